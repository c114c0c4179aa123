"""Who belongs to which room, and in what role."""

from enum import StrEnum

from mongoengine import DateTimeField, Document, ObjectIdField, StringField


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

    meta = {
        "collection": "memberships",
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "user"], "unique": True}, {"fields": ["user", "room"]}],
    }

    @classmethod
    def role_of(cls, room_id, user_id):
        """Return the user's Role in the room, or None when not a member."""
        # The hot path of every send: one indexed read, no document built.
        found = cls._get_collection().find_one({"room": room_id, "user": user_id}, {"role": 1, "_id": 0})
        return Role(found["role"]) if found else None
