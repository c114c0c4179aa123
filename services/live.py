"""Socket membership of rooms: join, leave, typing, disconnect, with presence kept per user."""

from services import notify, presence, rooms
from services.ratelimit import check_rate
from utils.errors import Forbidden, NotFound
from utils.extensions import socketio


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
    """The rooms this process's Socket.IO server has the socket in (evictions from any process included)."""
    return [room for room in socketio.server.rooms(sid, namespace=notify.NAMESPACE) if room != sid]


def do_typing(sid, user, ref, typing):
    """Relay a typing indicator to the rest of a room this socket has joined."""
    room = rooms.find(ref)
    if room is None or str(room.id) not in _joined_rooms(sid):
        raise Forbidden("join the room before sending typing indicators")
    check_rate(user, "typing")
    notify.notify_typing(str(room.id), str(user.id), user.username, typing, skip_sid=sid)


def do_disconnect(sid):
    """Forget a socket and tell the rooms it was its user's last socket in."""
    entry = presence.entry(sid)
    if entry is None:
        return
    for room_id in presence.unregister(sid, _joined_rooms(sid)):
        notify.notify_left(room_id, entry.user_id, entry.user_name)
