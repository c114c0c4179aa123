"""Chat rooms."""

from mongoengine import BooleanField, DateTimeField, Document, ObjectIdField, StringField

GENERAL = "general"


class Room(Document):
    name = StringField(required=True)
    # Lower-cased name, so "General" cannot sit beside "general".
    name_key = StringField(required=True)
    description = StringField(default="")
    private = BooleanField(default=False)
    created_by = ObjectIdField(null=True)
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "rooms",
        "auto_create_index": False,
        "indexes": [{"fields": ["name_key"], "unique": True}, {"fields": ["private", "-id"]}],
    }
