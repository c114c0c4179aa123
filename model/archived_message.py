"""Messages moved out of the live collection by the archiver; same fields, same ids, same positions."""

from model.message import COLLECTIONS, THREAD_INDEX, MessageFields


class ArchivedMessage(MessageFields):
    archived = True
    # Archiving ends a pin: the message leaves its room's pins and gives its slot back (`services/pins.py`).
    pinned = False

    meta = {
        "collection": COLLECTIONS[1],
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "seq"], "unique": True}, dict(THREAD_INDEX)],
    }
