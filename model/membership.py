"""Who belongs to which room, in what role, and how far they have read it."""

from enum import StrEnum

from mongoengine import DateTimeField, Document, IntField, ObjectIdField, StringField
from pymongo import UpdateOne

from model.message_log import COUNTERS
from model.migrations import once


class Role(StrEnum):
    """A member's role in one room (the global user/admin role is another thing)."""

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"
    READONLY = "readonly"


POSTERS = frozenset({Role.OWNER, Role.MODERATOR, Role.MEMBER})
MANAGERS = frozenset({Role.OWNER, Role.MODERATOR})
# What PUT members may give: the owner's role comes only with creating the room.
ASSIGNABLE = frozenset({Role.MODERATOR, Role.MEMBER, Role.READONLY})
# The roles a moderator may give, take away or remove, besides adding someone without one.
MODERATED = frozenset({Role.MEMBER, Role.READONLY})


class Membership(Document):
    room = ObjectIdField(required=True)
    user = ObjectIdField(required=True)
    role = StringField(required=True, choices=list(Role))
    joined_at = DateTimeField(required=True)
    # Read state (`services/read_state.py`), in room positions (`Message.seq`). Unread counting
    # starts after the read marker, or without one after the room's position when they joined.
    joined_seq = IntField(null=True)
    read_seq = IntField(null=True)
    read_message = ObjectIdField(null=True)
    read_at = DateTimeField(null=True)

    meta = {
        "collection": "memberships",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["room", "user"], "unique": True},
            {"fields": ["user", "room"]},
            # Who has read a message: the members whose marker is at or after its position.
            {"fields": ["room", "read_seq"]},
        ],
    }

    @classmethod
    def role_of(cls, room_id, user_id):
        """Return the user's Role in the room, or None when not a member."""
        # The hot path of every send: one indexed read, no document built.
        found = cls._get_collection().find_one({"room": room_id, "user": user_id}, {"role": 1, "_id": 0})
        return Role(found["role"]) if found else None


@once("join-positions")
def set_join_positions(db):
    """Start unread counting at their room's current position for memberships older than read state."""
    tops = {counter["_id"]: counter["seq"] for counter in db[COUNTERS].find()}
    missing = db.memberships.find({"joined_seq": None, "read_seq": None}, {"room": 1})
    updates = [UpdateOne({"_id": m["_id"]}, {"$set": {"joined_seq": tops.get(m["room"], 0)}}) for m in missing]
    if updates:
        db.memberships.bulk_write(updates, ordered=False)
