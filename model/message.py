"""Live chat messages; `MessageFields` is shared with the archive."""

from mongoengine import BooleanField, DateTimeField, Document, ObjectIdField, StringField


class MessageFields(Document):
    room = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    user_name = StringField(required=True)
    message_body = StringField(default="")
    time_stamp = DateTimeField(required=True)
    client_id = StringField(null=True)
    edited_at = DateTimeField(null=True)
    deleted = BooleanField(default=False)

    meta = {"abstract": True}


class Message(MessageFields):
    archived = False

    meta = {
        "collection": "messages",
        "auto_create_index": False,
        "indexes": [
            # History pages walk one room by id, both directions.
            {"fields": ["room", "-id"]},
            # Idempotent sends: one message per (user, clientId); messages without a clientId are exempt.
            {
                "fields": ["user_id", "client_id"],
                "unique": True,
                "partialFilterExpression": {"client_id": {"$type": "string"}},
            },
        ],
    }
