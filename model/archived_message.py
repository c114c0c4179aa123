"""Messages moved out of the live collection by the archiver; same fields, same ids."""

from model.message import MessageFields


class ArchivedMessage(MessageFields):
    archived = True

    meta = {
        "collection": "archived_messages",
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "-id"]}],
    }
