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
    # Messages with ids up to this one live in the archive, later ones in the live collection.
    # The archiver moves it forward between copying a batch and deleting it, so each message
    # is read from exactly one place at every moment.
    archived_before = ObjectIdField(null=True)

    meta = {
        "collection": "rooms",
        "auto_create_index": False,
        "indexes": [{"fields": ["name_key"], "unique": True}, {"fields": ["private", "-id"]}],
    }
