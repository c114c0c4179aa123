"""Pins: a room's owner, moderators and admins (every participant of a DM) pin up to MAX_PINS messages.

A pin is two records: the message's `pinned_at`, which every read of the message shows, and one
of its room's MAX_PINS slots in the `pins` collection (`model/pin.py`). The unique index on
(room, slot) keeps two pins out of one slot, so pins racing for the last slot never make a 51st;
the slot's id is the message's, so a message holds one slot at most.

The writes go in the order that makes a crash between them leave a slot whose message is not
pinned, never a pinned message without a slot (which would let a room pass MAX_PINS): a pin takes
the slot first and then marks the message; an unpin, a delete (`unpin_deleted`) and the archiver
(`unpin_archived`) change the message first and then free the slot. A slot whose message is not
pinned only takes room, and the next pin or list of its room frees it (`_slots`): at once when
its message is deleted or no longer live, STALE after it was taken when the message is live, as
until then it may be a pin whose second write is under way. A pin of a message that holds a slot
already (another pin of it under way, or left over) takes that slot over instead of a second one.
"""

import random
from datetime import timedelta
from functools import partial

from bson import ObjectId
from mongoengine import NotUniqueError

from model.message import Message, MessageFields
from model.pin import Pin
from model.room import Ref, Room
from model.user import User
from model.writes import update_one_by_id
from services import messages, notify, rooms
from services.permissions import check_can_pin
from utils.errors import Conflict, NotFound
from utils.timefmt import utcnow

MAX_PINS = 50
# A pin's two writes are milliseconds apart: a slot this old whose message is not pinned is no pin under way.
STALE = timedelta(minutes=5)


def do_pin(user: User, message_id: str) -> Message:
    """Pin a live message and broadcast `message_updated`; a pinned one is returned unchanged."""
    message, room, role = messages.readable_message(user, message_id)
    check_can_pin(user, room, role)
    if message.deleted:
        raise NotFound.message(message_id)
    # Each failed attempt is another request's success (a slot taken, the message pinned or deleted).
    for _ in range(MAX_PINS):
        if message.pinned:
            return message
        at = utcnow()
        if _take_slot(room, message, at):
            write = partial(
                update_one_by_id,
                Message,
                message.id,
                {"deleted": False, "pinned_at": None},
                set__pinned_at=at,
                inc__version=1,
            )
            pinned = notify.notify_message_updated(message.id, write)
            if pinned is not None:
                return pinned
        message = messages.live_message(message.id)
        if message.pinned:  # by another pin of it, whose slot this one took over: the slot gets that pin's time back
            Pin.objects(id=message.id, taken_at=at).update_one(set__taken_at=message.pinned_at)
    raise Conflict("the room's pins kept changing; try again")


def do_unpin(user: User, message_id: str) -> Message:
    """Unpin a live message and broadcast `message_updated`; an unpinned one is returned unchanged."""
    message, room, role = messages.readable_message(user, message_id)
    check_can_pin(user, room, role)
    if message.deleted:
        raise NotFound.message(message_id)
    if not message.pinned:
        return message

    def unpin() -> Message | None:
        # This pin only: the slot is freed only if no pin of the message took it over meanwhile.
        unpinned = update_one_by_id(
            Message, message.id, {"deleted": False, "pinned_at": message.pinned_at}, set__pinned_at=None, inc__version=1
        )
        if unpinned is not None:
            Pin.objects(id=message.id, taken_at=message.pinned_at).delete()
        return unpinned

    # None: unpinned, pinned again or deleted by other requests meanwhile
    return notify.notify_message_updated(message.id, unpin) or messages.live_message(message.id)


def unpin_deleted(message: MessageFields) -> None:
    """Unpin a message once it is marked deleted, and free its slot (no pin lands on a deleted message)."""
    if Message.objects(id=message.id, deleted=True, pinned_at__ne=None).update_one(set__pinned_at=None):
        Pin.objects(id=message.id).delete()


def unpin_archived(room_id: ObjectId, moved: set[ObjectId]) -> None:
    """Free the slots of a room's messages that the archiver moved out of the live collection (ids in `moved`)."""
    archived = [pin.id for pin in Pin.of_room(room_id).only("id") if pin.id in moved]
    if archived:
        Pin.objects(id__in=archived).delete()


def list_pins(user: User, ref: Ref) -> list[Message]:
    """The pinned messages of a room the caller may read, newest pin first."""
    room, _ = rooms.access(user, ref)
    pinned = [message for _, message in _slots(room) if message.pinned]
    return sorted(pinned, key=lambda message: (message.pinned_at, message.id), reverse=True)


def _take_slot(room: Room, message: Message, at) -> bool:
    """Hold a slot of the room for the message, taken `at`; False when another request took it first."""
    # Taking over the slot the message holds makes a pending unpin or repair, which names its old time, leave it.
    if Pin.objects(id=message.id).update_one(set__taken_at=at):
        return True
    taken = {pin.slot for pin, _ in _slots(room)}
    free = [slot for slot in range(MAX_PINS) if slot not in taken]
    if not free:
        raise Conflict(f"a room holds at most {MAX_PINS} pins: unpin one first")
    try:  # at random, so that racing pins seldom choose the same slot
        Pin(id=message.id, room=room.id, slot=random.choice(free), taken_at=at).save(force_insert=True)
    except NotUniqueError:  # another pin took the slot, or one of this message a slot, first
        return False
    return True


def _slots(room: Room) -> list[tuple[Pin, Message]]:
    """The room's slots held by live messages, each with its message; the others are freed (see the top)."""
    held = list(Pin.of_room(room.id))
    # By id alone, so that the `_id` index answers; a message at or below the watermark is being archived.
    found = {message.id: message for message in Message.objects(id__in=[pin.id for pin in held])}
    live = {key: m for key, m in found.items() if not m.deleted and m.seq > room.archived_seq}
    since = utcnow() - STALE
    kept = []
    for pin in held:
        message = live.get(pin.id)
        if message is not None and (message.pinned or pin.taken_at > since):
            kept.append((pin, message))
        else:
            Pin.objects(id=pin.id, taken_at=pin.taken_at).delete()
    return kept
