"""Live chat messages; `MessageFields` is shared with the archive.

Every message has `seq`, its position in its room: allocated by the writer
(`model/message_log.py`) in the order messages are stored, whatever process stores them,
so cursors follow it. A position whose writer failed is filled by a tombstone
(`{room, seq, gap: true}`, never shown), so readers can tell "never coming" from
"still being written".
"""

from mongoengine import BooleanField, DateTimeField, Document, IntField, ListField, ObjectIdField, StringField


class MessageFields(Document):
    room = ObjectIdField(required=True)
    seq = IntField(required=True)
    user_id = ObjectIdField(required=True)
    user_name = StringField(required=True)
    message_body = StringField(default="")
    time_stamp = DateTimeField(required=True)
    client_id = StringField(null=True)
    edited_at = DateTimeField(null=True)
    deleted = BooleanField(default=False)
    # A position whose writer failed: never shown, it only tells readers not to wait for it.
    gap = BooleanField()
    # What the archiver leaves in the live collection of a message with a clientId, so a retry
    # months later still finds the original instead of storing a second copy.
    stub = BooleanField()
    # The body's search keys (`utils/search_keys.py`), written with it; a deleted message has none.
    search_keys = ListField(StringField())

    meta = {"abstract": True}


class Message(MessageFields):
    archived = False

    meta = {
        "collection": "messages",
        "auto_create_index": False,
        "indexes": [
            # History pages walk one room in order, both directions; one message (or tombstone) a position.
            {"fields": ["room", "seq"], "unique": True},
            # Idempotent sends: one message per (user, clientId); messages without a clientId are exempt.
            # Archived messages leave a stub here (`services/archive.py`) so a late retry still finds them.
            {
                "fields": ["user_id", "client_id"],
                "unique": True,
                "partialFilterExpression": {"client_id": {"$type": "string"}},
            },
            # Search (`model/message_search.py`): the messages holding one key, newest first, in any room.
            {"fields": ["search_keys", "-id"]},
        ],
    }
