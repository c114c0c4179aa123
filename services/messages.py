"""Messages: history pages in position order, idempotent sends, edits, soft deletes."""

import time
from datetime import datetime
from functools import partial

from bson import ObjectId
from flask import current_app
from mongoengine import NotUniqueError

from model import message_scan
from model.archived_message import ArchivedMessage
from model.membership import Role
from model.message import Message, MessageFields, new_message
from model.message_log import MessageLog, RoomGone, top_position
from model.room import Ref, Room
from model.user import User
from model.writes import update_one_by_id
from services import files, mentions, notify, pins, read_state, rooms, threads
from services.permissions import check_can_delete_message, check_can_edit_message
from services.ratelimit import check_rate
from utils import metrics, search_keys
from utils.errors import NotFound, ValidationFailed
from utils.ids import parse_id
from utils.timefmt import utcnow

_log = MessageLog(notify.notify_position_skipped)


def history(
    user: User,
    ref: Ref,
    limit: int,
    before: ObjectId | None = None,
    after: ObjectId | None = None,
    archived: bool = False,
    thread: ObjectId | None = None,
) -> tuple[list[MessageFields], str | None]:
    """Return (messages, nextCursor) of a room the caller may read, or of one thread of it.

    No cursor: the newest `limit`, newest first. `before`: older ones, newest first.
    `after`: newer ones, oldest first. nextCursor continues in the same direction, or is None.
    """
    room, _ = rooms.access(user, ref)
    document = ArchivedMessage if archived else Message
    collection = document._get_collection()
    # Positions up to the room's archive watermark are read from the archive, later ones live.
    floor, ceiling = (0, room.archived_seq) if archived else (room.archived_seq, top_position(room.id))
    gap_seconds = current_app.config["GAP_SECONDS"]
    above = max(_position(room, after, "after"), floor) if after is not None else None
    below = min(_position(room, before, "before"), ceiling + 1) if before is not None else None
    if thread is not None:
        if message_scan.position_of(_live_and_archived(), room.id, thread) is None:
            raise NotFound.message(str(thread))
        live_gaps = None if archived else gap_seconds
        docs = threads.page(collection, room.id, thread, floor, ceiling, limit + 1, below, above, live_gaps)
    elif above is not None:
        docs = message_scan.newer(collection, room.id, above, ceiling, limit + 1, gap_seconds)
    elif below is not None:
        docs = message_scan.older(collection, room.id, below, floor, limit + 1)
    else:
        docs = message_scan.newest(collection, room.id, floor, ceiling, limit + 1, gap_seconds)
    page = [document._from_son(doc) for doc in docs[:limit]]
    return page, str(page[-1].id) if len(docs) > limit else None


def _live_and_archived():
    return Message._get_collection(), ArchivedMessage._get_collection()


def _position(room: Room, message_id: ObjectId, field: str) -> int:
    """The position a cursor names; a cursor that is no message of this room is a validation error."""
    seq = message_scan.position_of(_live_and_archived(), room.id, message_id)
    if seq is None:
        raise ValidationFailed("unknown cursor", {field: ["Not a message of this room."]})
    return seq


def send(
    user: User,
    ref: Ref,
    body: str,
    client_id: str | None = None,
    reply_to: ObjectId | None = None,
    attachments: list[ObjectId] = (),
) -> tuple[MessageFields, bool]:
    """Post to a room named by the client (REST): count the send against the rate limit, authorise, then
    `do_send_message`."""
    check_rate(user, "message")
    return do_send_message(user, rooms.postable(user, ref), body, client_id, reply_to, attachments)


def do_send_message(
    user: User,
    room_id: ObjectId,
    body: str,
    client_id: str | None = None,
    reply_to: ObjectId | None = None,
    attachments: list[ObjectId] = (),
) -> tuple[MessageFields, bool]:
    """Store a message in a room the caller may post in and broadcast it; return (message, created).

    A retry with a clientId this user already used returns the stored message: the unique
    (userId, clientId) index decides, even under a race. The original is broadcast again, in
    case its first broadcast was lost with the process that stored it; every process drops a
    message it has already delivered, so each socket gets it at most once.

    A reply joins the thread of the message it answers, whose root then counts it; the users
    the body names (or, in a DM, the other participants) get a `notification`. The
    `attachments` (file ids) are taken for the message as it is stored, and given back if it
    is not. The caller has counted the send against the rate limit, before any read authorising it.
    """
    root = threads.root_of(room_id, reply_to) if reply_to is not None else None
    named, mentions_room = mentions.resolve(user, room_id, body)
    message = new_message(
        room=room_id,
        user_id=user.id,
        user_name=user.username,
        message_body=body,
        client_id=client_id,
        reply_to=root,
        is_reply=True if root is not None else None,
        mentions=named,
        mentions_room=mentions_room,
        search_keys=search_keys.message_keys(body, room_id, named, mentions_room),
    )
    started = time.perf_counter()
    try:
        with files.attached(user, message, attachments):
            _log.append(message, _announce)
    except NotUniqueError:
        original = _original(user, client_id)
        if not original.archived and not original.deleted:
            notify.notify_message(original)
        return original, False
    except RoomGone:
        raise NotFound.room(room_id) from None
    metrics.message_stored(started)
    if root is not None:
        threads.count_reply(message)
    kind = rooms.kind_of(room_id)
    if kind == "dm" or named or mentions_room:
        mentions.notify_mentioned(message, kind)
    return message, True


def _announce(message: Message) -> None:
    """What follows a message's store, in its room's order (`MessageLog.append`): the sender's marker moves to it and
    the room gets it."""
    read_state.mark_sent(message)
    notify.notify_message(message)


def settled(channel: str, first: int, last: int) -> list[tuple[int, str, dict | None]]:
    """A room's positions from `first` to `last` that are settled, in order, each with its id and its message as the
    room's `message` event carries it (None: a tombstone, or a message no longer to broadcast), stopping before a
    position still being written; one allocated GAP_SECONDS ago and still empty is filled (`message_scan.settled`)."""
    room_id, gap_seconds = ObjectId(channel), current_app.config["GAP_SECONDS"]
    docs = message_scan.settled(Message._get_collection(), room_id, first - 1, last, last - first + 1, gap_seconds)
    unsent = ("gap", "stub", "deleted")
    return [
        (doc["seq"], str(doc["_id"]), None if any(doc.get(key) for key in unsent) else _payload(doc)) for doc in docs
    ]


def _payload(doc: dict) -> dict:
    return notify.message_payload(Message._from_son(doc))


def settled_top(room: Room) -> int:
    """The highest position of a room with no position below it still being written."""
    collection, gap_seconds = Message._get_collection(), current_app.config["GAP_SECONDS"]
    return message_scan.settled_top(collection, room.id, room.archived_seq, top_position(room.id), gap_seconds)


def stored_since(since: datetime) -> list[Message]:
    """The live messages stored since a time, oldest first (to broadcast again what a dead process may not have)."""
    return list(Message.objects(id__gt=ObjectId.from_datetime(since), gap__ne=True, stub__ne=True).order_by("id"))


def _original(user: User, client_id: str) -> MessageFields:
    message = Message.objects(user_id=user.id, client_id=client_id).first()
    return ArchivedMessage.objects(id=message.id).first() if message.stub else message


def readable_message(user: User, message_id: str) -> tuple[Message, Room, Role | None]:
    """Return (message, room, caller's role) for a live message the caller may read; others are 404."""
    oid = parse_id(message_id)
    message = Message.objects(id=oid, gap__ne=True).first() if oid else None
    if message is None:
        raise NotFound.message(message_id)
    try:
        room, role = rooms.access(user, message.room)
    except NotFound:
        raise NotFound.message(message_id) from None
    if message.seq <= room.archived_seq:
        raise NotFound(f"message {message_id} is archived")
    return message, room, role


def live_message(message_id: ObjectId) -> Message:
    """The message as it is now (after a guarded update found it changed); a deleted or archived one is 404."""
    message = Message.objects(id=message_id, deleted=False, stub__ne=True).first()
    if message is None:
        raise NotFound.message(message_id)
    return message


def do_edit_message(user: User, message_id: str, body: str) -> Message:
    """Change a message's body (its author only) and broadcast `message_updated`."""
    message, room, _ = readable_message(user, message_id)
    check_can_edit_message(user, message)
    named, mentions_room = mentions.resolve(user, room.id, body)
    write = partial(
        update_one_by_id,
        Message,
        message.id,
        {"deleted": False},
        set__message_body=body,
        set__edited_at=utcnow(),
        set__mentions=named,
        set__mentions_room=mentions_room,
        set__search_keys=search_keys.message_keys(body, room.id, named, mentions_room),
        inc__version=1,
    )
    updated = notify.notify_message_updated(message.id, write)
    if updated is None:
        raise NotFound.message(message_id)
    mentions.notify_mentioned(updated, room.kind, before=message)
    return updated


def do_delete_message(user: User, message_id: str) -> None:
    """Soft-delete a message (author, room owner/moderators, admins) and broadcast `message_deleted`."""
    message, _, role = readable_message(user, message_id)
    check_can_delete_message(user, message, role)

    def delete() -> bool:
        deleted = Message.objects(id=message.id, deleted=False).update_one(
            set__deleted=True,
            set__message_body="",
            set__reactions=[],
            set__mentions=[],
            set__mentions_room=False,
            set__attachments=[],
            unset__search_keys=True,
        )
        if deleted:
            pins.unpin_deleted(message)
        return bool(deleted)

    if notify.notify_message_deleted(message, delete):
        if message.reply_to is not None:
            threads.uncount_reply(message)
        if message.attachments:  # as read before the update: a message's files never change until it is deleted
            files.do_delete_message_files(message.id)
