"""Pin slots: one document a pinned message, holding one of its room's slots (`services/pins.py`).

They live apart from the messages so that no index of the messages collection serves pins: every
message stored paid an entry in one, and almost none is ever pinned (docs/PERFORMANCE.md).
"""

from bson import ObjectId
from mongoengine import DateTimeField, Document, IntField, ObjectIdField, QuerySet
from pymongo import ReplaceOne

from model.message import COLLECTIONS
from model.migrations import once

MIGRATION = "pin-slots"


class Pin(Document):
    # The pinned message's id: a message holds one slot at most.
    id = ObjectIdField(primary_key=True)
    room = ObjectIdField(required=True)
    # Which of its room's slots (0 to MAX_PINS - 1) the message holds: no two of a room the same.
    slot = IntField(required=True)
    # When the slot was taken, or taken over by a pin of the same message: equal to the message's
    # `pinned_at` once that is written; only a write naming this time frees the slot.
    taken_at = DateTimeField(required=True)

    meta = {
        "collection": "pins",
        "auto_create_index": False,
        "indexes": [{"fields": ["room", "slot"], "unique": True}],
    }

    @classmethod
    def of_room(cls, room_id: ObjectId) -> QuerySet:
        """The room's slots, read from the (room, slot) index."""
        return cls.objects(room=room_id)


@once(MIGRATION)
def move_pin_slots(db):
    """Move the slots pinned messages held in the messages collection (`pin_slot`) into `pins`.

    Archived copies lose theirs too: the archive holds no pins.
    """
    held = list(db.messages.find({"pin_slot": {"$exists": True}}, {"room": 1, "pin_slot": 1, "pinned_at": 1}))
    if held:
        slots = [
            ReplaceOne(
                {"_id": d["_id"]}, {"room": d["room"], "slot": d["pin_slot"], "taken_at": d["pinned_at"]}, upsert=True
            )
            for d in held
        ]
        db.pins.bulk_write(slots, ordered=False)  # a rerun after a crash here writes the same again
    for name in COLLECTIONS:
        db[name].update_many({"pin_slot": {"$exists": True}}, {"$unset": {"pin_slot": ""}})
