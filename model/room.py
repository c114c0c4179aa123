"""Chat rooms."""

from bson import ObjectId
from mongoengine import BooleanField, DateTimeField, Document, IntField, ObjectIdField, StringField

GENERAL = "general"
# What a client names a room by: its id or its name; None means `general`. Services pass ids too.
Ref = str | ObjectId | None
ROOM, DM = "room", "dm"
KINDS = (ROOM, DM)
# A caller's DMs, newest first, are read from this index: their rooms of kind dm (`rooms.listed`).
BY_KIND = [("kind", 1), ("_id", -1)]


class Room(Document):
    # None for a direct-message room.
    name = StringField(null=True)
    # Lower-cased name, so "General" cannot sit beside "general". A DM's is its participants'
    # key (`services/dms.py`), which no room name can spell: the same unique index then keeps
    # one DM per set of people.
    name_key = StringField(required=True)
    kind = StringField(default="room", choices=KINDS)
    description = StringField(default="")
    private = BooleanField(default=False)
    created_by = ObjectIdField(null=True)
    created_at = DateTimeField(required=True)
    # Messages at or below this position live in the archive, later ones in the live collection.
    # The archiver moves it forward between copying a batch and deleting it, so each message
    # is read from exactly one place at every moment.
    archived_seq = IntField(default=0)
    # Where the archiver's last batch began: a run killed before deleting it finishes it from here.
    archiving_from = IntField(default=0)

    meta = {
        "collection": "rooms",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["name_key"], "unique": True},
            {"fields": ["private", "-id"]},
            {"fields": ["kind", "-id"]},  # BY_KIND
        ],
    }
