"""Who is connected, and in which rooms: one entry per socket, counted per user.

A user with several tabs is online in a room while any of their sockets is in it, so
`enter` reports only the first socket and `leave` only the last.
"""

from dataclasses import dataclass, field


@dataclass
class SocketEntry:
    user: object
    jti: str
    rooms: set = field(default_factory=set)

    @property
    def user_id(self):
        return str(self.user.id)

    @property
    def user_name(self):
        return self.user.username


_sockets = {}
_rooms = {}  # room id -> {user id -> set of sids}


def register(sid, user, jti):
    """Remember an authenticated socket and its user."""
    _sockets[sid] = SocketEntry(user, jti)


def entry(sid):
    """Return the socket's entry, or None once it is gone."""
    return _sockets.get(sid)


def enter(sid, room_id):
    """Put the socket in the room; True when it is the user's first socket there."""
    socket = _sockets[sid]
    socket.rooms.add(room_id)
    sids = _rooms.setdefault(room_id, {}).setdefault(socket.user_id, set())
    first = not sids
    sids.add(sid)
    return first


def leave(sid, room_id):
    """Take the socket out of the room; True when it was the user's last socket there."""
    socket = _sockets.get(sid)
    if socket is None or room_id not in socket.rooms:
        return False
    socket.rooms.discard(room_id)
    users = _rooms.get(room_id, {})
    sids = users.get(socket.user_id, set())
    sids.discard(sid)
    if sids:
        return False
    users.pop(socket.user_id, None)
    if not users:
        _rooms.pop(room_id, None)
    return True


def unregister(sid):
    """Forget a socket; return the rooms in which it was its user's last socket."""
    socket = _sockets.get(sid)
    if socket is None:
        return []
    last_in = [room_id for room_id in list(socket.rooms) if leave(sid, room_id)]
    _sockets.pop(sid, None)
    return last_in


def online_users(room_id):
    """Return {userId: userName} of the users with a socket in the room."""
    return {user_id: _sockets[next(iter(sids))].user_name for user_id, sids in _rooms.get(room_id, {}).items()}


def sids_in_room(room_id, user_id=None):
    """Return the sids in the room, of one user or of everyone."""
    users = _rooms.get(room_id, {})
    if user_id is not None:
        return set(users.get(user_id, ()))
    return {sid for sids in users.values() for sid in sids}


def sids_with_token(jti):
    """Return the sids that authenticated with this access token."""
    return [sid for sid, socket in _sockets.items() if socket.jti == jti]
