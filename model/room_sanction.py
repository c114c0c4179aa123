"""What a room holds against a user beyond a membership: a ban, a readonly role."""

from enum import StrEnum

from mongoengine import DateTimeField, Document, ObjectIdField, StringField


class Sanction(StrEnum):
    """A room's hold on a user; it outlives the membership, so leaving and rejoining keeps it."""

    BAN = "ban"
    READONLY = "readonly"


class RoomSanction(Document):
    room = ObjectIdField(required=True)
    user = ObjectIdField(required=True)
    kind = StringField(required=True, choices=list(Sanction))
    by = ObjectIdField(required=True)
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "room_sanctions",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["room", "user", "kind"], "unique": True},
            {"fields": ["room", "kind", "created_at"]},
        ],
    }

    @classmethod
    def of(cls, room_id, user_id):
        """Return the set of Sanctions the room holds against the user."""
        # One indexed read, no documents built: it runs on every new join.
        found = cls._get_collection().find({"room": room_id, "user": user_id}, {"kind": 1, "_id": 0})
        return {Sanction(row["kind"]) for row in found}

    @classmethod
    def among(cls, pairs):
        """`of` for each `(room id, user id)` of a set, in one read: `{pair: Sanctions}`. The rooms' sanctions, by the
        index's room prefix (SecantusDB scans the collection for the rooms and the users both in `$in`)."""
        held = {pair: set() for pair in pairs}
        if pairs:
            query = {"room": {"$in": list({room_id for room_id, _ in pairs})}}
            for row in cls._get_collection().find(query, {"room": 1, "user": 1, "kind": 1, "_id": 0}):
                if (row["room"], row["user"]) in held:
                    held[row["room"], row["user"]].add(Sanction(row["kind"]))
        return held
