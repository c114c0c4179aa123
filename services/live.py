"""Socket membership of rooms: join, leave, typing, posting, disconnect, with presence kept per user."""

import time

from flask import current_app

from services import notify, presence, rooms
from services.ratelimit import check_rate
from utils.errors import Forbidden, NotFound
from utils.extensions import socketio

# A socket that posts in a room it has joined keeps the right to post there, so its next
# messages skip the membership read. The right is a Socket.IO room (`notify.post_grant`) that
# every role change, removal and deletion closes on every process, through the message queue;
# it is read again after MEMBERSHIP_CACHE_SECONDS, which bounds a change missed while Redis was down.
_granted = {}  # sid -> {room id: monotonic time its grant expires}


def do_socket_join(sid, user, ref):
    """Join the socket to a room the user may read (public rooms make them a member); return (room, online)."""
    room = rooms.do_join_room(ref, user)
    room_id = str(room.id)
    socketio.server.enter_room(sid, room_id, namespace=notify.NAMESPACE)
    if presence.enter(sid, room_id):
        notify.notify_joined(room_id, str(user.id), user.username, skip_sid=sid)
    return room_id, presence.online_users(room_id)


def do_socket_leave(sid, user, ref):
    """Stop this socket receiving a room; membership stays."""
    room = rooms.find(ref)
    if room is None:
        raise NotFound.room(ref)
    room_id = str(room.id)
    socketio.server.leave_room(sid, room_id, namespace=notify.NAMESPACE)
    if presence.leave(sid, room_id, str(user.id)):
        notify.notify_left(room_id, str(user.id), user.username)
    return room_id


def _joined_rooms(sid):
    """The chat rooms this process's Socket.IO server has the socket in (evictions from any process included)."""
    rooms_in = socketio.server.rooms(sid, namespace=notify.NAMESPACE)
    return [room for room in rooms_in if room != sid and not room.startswith(notify.GRANT_PREFIX)]


def _in_room(sid, room):
    """Whether the socket is in a Socket.IO room of this process (`server.rooms()` walks every room)."""
    return sid in socketio.server.manager.rooms.get(notify.NAMESPACE, {}).get(room, ())


def socket_postable(sid, user, ref):
    """`rooms.postable` for a socket: the membership is read once per joined room, not once per message."""
    oid = rooms.id_of(ref)
    if oid is None or not _in_room(sid, str(oid)):
        return rooms.postable(ref, user)
    room_id = str(oid)
    grant = notify.post_grant(room_id, str(user.id))
    granted = _granted.setdefault(sid, {})
    if _in_room(sid, grant) and time.monotonic() < granted.get(room_id, 0):
        return oid
    # Into the grant room before the read: a change after this point closes it, one before is in the read.
    expires = time.monotonic() + current_app.config["MEMBERSHIP_CACHE_SECONDS"]
    socketio.server.enter_room(sid, grant, namespace=notify.NAMESPACE)
    if rooms.is_poster(oid, user):
        granted[room_id] = expires
        return oid
    socketio.server.leave_room(sid, grant, namespace=notify.NAMESPACE)
    return rooms.check_postable(ref, user)  # the membership was just read: the full lookup gives the error


def do_typing(sid, user, ref, typing):
    """Relay a typing indicator to the rest of a room this socket has joined."""
    room = rooms.find(ref)
    if room is None or not _in_room(sid, str(room.id)):
        raise Forbidden("join the room before sending typing indicators")
    check_rate(user, "typing")
    notify.notify_typing(str(room.id), str(user.id), user.username, typing, skip_sid=sid)


def do_disconnect(sid):
    """Forget a socket and tell the rooms it was its user's last socket in."""
    _granted.pop(sid, None)
    entry = presence.entry(sid)
    if entry is None:
        return
    for room_id in presence.unregister(sid, _joined_rooms(sid)):
        notify.notify_left(room_id, entry.user_id, entry.user_name)
