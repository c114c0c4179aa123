"""Pins: a room's owner, moderators and admins (every participant of a DM) pin up to MAX_PINS messages.

A pinned message holds one of its room's MAX_PINS slots (`pin_slot`), set in the same update as
`pinned_at`. The unique index on (room, pin_slot) keeps two pins out of one slot, so pins racing
for the last slot never make a 51st, and there is no counter to keep in step with the messages:
a slot goes back when its message is unpinned, deleted (`unpin_deleted`) or archived (the
archive holds no slots, and an archived copy is never pinned).
"""

import random

from bson import ObjectId
from mongoengine import NotUniqueError, QuerySet

from model.message import Message, MessageFields
from model.room import Ref
from model.user import User
from model.writes import update_one_by_id
from services import messages, notify, rooms
from services.permissions import check_can_pin
from utils.errors import Conflict, NotFound
from utils.timefmt import utcnow

MAX_PINS = 50


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
        try:
            pinned = update_one_by_id(
                Message,
                message.id,
                {"deleted": False, "pin_slot": None},
                set__pinned_at=utcnow(),
                set__pin_slot=_free_slot(room.id),
            )
        except NotUniqueError:  # another pin took that slot first
            pinned = None
        if pinned is not None:
            notify.notify_message_updated(pinned)
            return pinned
        message = messages.live_message(message.id)
    raise Conflict("the room's pins kept changing; try again")


def do_unpin(user: User, message_id: str) -> Message:
    """Unpin a live message and broadcast `message_updated`; an unpinned one is returned unchanged."""
    message, room, role = messages.readable_message(user, message_id)
    check_can_pin(user, room, role)
    if message.deleted:
        raise NotFound.message(message_id)
    if not message.pinned:
        return message
    unpinned = update_one_by_id(
        Message,
        message.id,
        {"deleted": False, "pin_slot__ne": None},
        set__pinned_at=None,
        unset__pin_slot=True,
    )
    if unpinned is None:  # unpinned or deleted by another request meanwhile
        return messages.live_message(message.id)
    notify.notify_message_updated(unpinned)
    return unpinned


def unpin_deleted(message: MessageFields) -> None:
    """Give back the slot of a message once it is marked deleted (no pin lands on a deleted message)."""
    Message.objects(id=message.id, deleted=True, pin_slot__ne=None).update_one(
        set__pinned_at=None, unset__pin_slot=True
    )


def list_pins(user: User, ref: Ref) -> list[Message]:
    """The pinned messages of a room the caller may read, newest pin first."""
    room, _ = rooms.access(user, ref)
    # One at or below the archive's watermark is being archived: it is read from the archive now,
    # where it is not pinned.
    return [message for message in _pinned_in(room.id).order_by("-pinned_at", "-id") if message.seq > room.archived_seq]


def _pinned_in(room_id: ObjectId) -> QuerySet:
    """The room's pinned messages (at most MAX_PINS), from the slot index.

    The query names the index's fields only, and its filter word for word: so SecantusDB plans
    it on the index as MongoDB does.
    """
    return Message.objects(room=room_id, pin_slot__gte=0)


def _free_slot(room_id: ObjectId) -> int:
    """A slot no pinned message of the room holds, at random so that racing pins seldom choose the same."""
    taken = set(_pinned_in(room_id).scalar("pin_slot"))
    free = [slot for slot in range(MAX_PINS) if slot not in taken]
    if not free:
        raise Conflict(f"a room holds at most {MAX_PINS} pins: unpin one first")
    return random.choice(free)
