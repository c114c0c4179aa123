"""Who belongs to which room, and in what role."""

from mongoengine import DateTimeField, Document, ObjectIdField, StringField

ROLES = ("owner", "moderator", "member", "readonly")


class Membership(Document):
    room = ObjectIdField(required=True)
    user = ObjectIdField(required=True)
    role = StringField(required=True, choices=ROLES)
    joined_at = DateTimeField(required=True)

    meta = {
        "collection": "memberships",
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "user"], "unique": True}, {"fields": ["user", "room"]}],
    }
