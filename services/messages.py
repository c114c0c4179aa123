"""Messages: history pages, idempotent sends, edits, soft deletes."""

from datetime import timedelta

from bson import ObjectId
from mongoengine import NotUniqueError

from model.archived_message import ArchivedMessage
from model.group_insert import GroupInsert
from model.message import Message
from services import live, notify, rooms
from services.permissions import check_can_delete_message, check_can_edit_message
from services.ratelimit import check_rate
from utils.errors import NotFound
from utils.ids import parse_id
from utils.timefmt import utcnow


def history(user, room_ref, limit, before=None, after=None, archived=False):
    """Return (messages, nextCursor) of a room the caller may read.

    No cursor: the newest `limit`, newest first. `before`: older ones, newest first.
    `after`: newer ones, oldest first. nextCursor continues in the same direction, or is None.
    """
    room, _ = rooms.access(room_ref, user)
    ids = _window(room.archived_before, archived)
    if ids is None:
        return [], None
    if after:
        ids["$gt"] = max(ids.get("$gt", after), after)
    if before:
        ids["$lt"] = before
    document = ArchivedMessage if archived else Message
    page = _scan(document, room.id, ids, ascending=bool(after), wanted=limit + 1)
    next_cursor = str(page[limit - 1].id) if len(page) > limit else None
    return page[:limit], next_cursor


# Seconds of history per query, widening until a page is full. SecantusDB's planner fetches
# and sorts a whole index range before applying the limit, so an open range on a busy room
# reads all of it; ObjectIds carry their creation time, which bounds each range on both sides.
# On MongoDB each query is the same index scan, without the sort.
WINDOWS = (600, 4800, 38400, 307200, 2457600, 19660800, None)


def _scan(document, room_id, ids, ascending, wanted):
    """Walk the room's ids away from the cursor in widening time windows until `wanted` are found."""
    edge = ids.get("$gt") if ascending else ids.get("$lt", ids.get("$lte"))
    anchor = edge.generation_time if edge else utcnow()
    for seconds in WINDOWS:
        window = dict(ids)
        if seconds is not None:
            step = timedelta(seconds=seconds)
            if ascending:
                window["$lt"] = ObjectId.from_datetime(anchor + step)
            else:
                window["$gte"] = ObjectId.from_datetime(anchor - step)
        raw = {"room": room_id, **({"_id": window} if window else {})}
        query = document.objects(__raw__=raw).order_by("id" if ascending else "-id")
        page = list(query.limit(wanted))
        if len(page) == wanted:
            break
    return page


def _window(watermark, archived):
    """The ids a read may show: live ones above the room's archive watermark, archived ones at or below it."""
    if archived:
        return {"$lte": watermark} if watermark else None
    return {"$gt": watermark} if watermark else {}


_inserts = GroupInsert(Message)


def do_send_message(user, room_ref, body, client_id=None, sid=None):
    """Store a message and broadcast it; return (message, created). `sid`: the socket it came from.

    A retry with a clientId this user already used returns the stored message and
    broadcasts nothing: the unique (userId, clientId) index decides, even under a race.
    """
    room_id = live.socket_postable(sid, user, room_ref) if sid else rooms.postable(room_ref, user)
    check_rate(user, "message")
    message = Message(
        room=room_id,
        user_id=user.id,
        user_name=user.username,
        message_body=body,
        time_stamp=utcnow(),
        client_id=client_id,
    )
    try:
        _inserts.insert(message)
    except NotUniqueError:
        return _original(user, client_id), False
    notify.notify_message(message)
    return message, True


def _original(user, client_id):
    return (
        Message.objects(user_id=user.id, client_id=client_id).first()
        or ArchivedMessage.objects(user_id=user.id, client_id=client_id).first()
    )


def _readable_message(user, message_id):
    oid = parse_id(message_id)
    message = Message.objects(id=oid).first() if oid else None
    if message is None:
        raise NotFound.message(message_id)
    try:
        room, role = rooms.access(message.room, user)
    except NotFound:
        raise NotFound.message(message_id) from None
    if room.archived_before and message.id <= room.archived_before:
        raise NotFound(f"message {message_id} is archived")
    return message, room, role


def do_edit_message(user, message_id, body):
    """Change a message's body (its author only) and broadcast `message_updated`."""
    message, _, _ = _readable_message(user, message_id)
    check_can_edit_message(message, user)
    updated = Message.objects(id=message.id, deleted=False).modify(
        new=True, set__message_body=body, set__edited_at=utcnow()
    )
    if updated is None:
        raise NotFound.message(message_id)
    notify.notify_message_updated(updated)
    return updated


def do_delete_message(user, message_id):
    """Soft-delete a message (author, room owner/moderators, admins) and broadcast `message_deleted`."""
    message, _, role = _readable_message(user, message_id)
    check_can_delete_message(message, user, role)
    deleted = Message.objects(id=message.id, deleted=False).modify(set__deleted=True, set__message_body="")
    if deleted is not None:
        notify.notify_message_deleted(message)
