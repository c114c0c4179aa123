"""Messages moved out of the live collection by the archiver; same fields, same ids, same positions."""

from model.message import MessageFields


class ArchivedMessage(MessageFields):
    archived = True

    meta = {
        "collection": "archived_messages",
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "seq"], "unique": True}, {"fields": ["room", "reply_to", "seq"]}],
    }
