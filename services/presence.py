"""Who is connected, and in which rooms, counted per user across every server process.

This process keeps its own sockets (sid -> user and token); a store keeps the shared
picture: in memory for one process, in Redis (`services/presence_redis.py`) when REDIS_URL
is set. A user with several tabs, on any processes, is online in a room while any of their
sockets is in it: `enter` reports only the first socket and `leave` only the last.
"""

from dataclasses import dataclass


@dataclass
class SocketEntry:
    user: object
    jti: str

    @property
    def user_id(self):
        return str(self.user.id)

    @property
    def user_name(self):
        return self.user.username


class MemoryStore:
    """The shared picture for a single process."""

    def __init__(self):
        self.rooms = {}  # room id -> {sid: (user id, user name)}
        self.tokens = {}  # jti -> {sid}

    def add(self, room, sid, user_id, user_name):
        members = self.rooms.setdefault(room, {})
        first = all(uid != user_id for uid, _ in members.values())
        members[sid] = (user_id, user_name)
        return first

    def remove(self, room, sid, user_id):
        members = self.rooms.get(room, {})
        if members.pop(sid, None) is None:
            return False
        if not members:
            self.rooms.pop(room, None)
        return all(uid != user_id for uid, _ in members.values())

    def sockets(self, room):
        return dict(self.rooms.get(room, {}))

    def add_token(self, jti, sid, expires_in):
        self.tokens.setdefault(jti, set()).add(sid)

    def remove_token(self, jti, sid):
        sids = self.tokens.get(jti, set())
        sids.discard(sid)
        if not sids:
            self.tokens.pop(jti, None)

    def token_sids(self, jti):
        return set(self.tokens.get(jti, ()))


_sockets = {}
_store = MemoryStore()


def use_store(store):
    """Replace the shared store (Redis when REDIS_URL is set)."""
    global _store
    _store = store


def register(sid, user, claims):
    """Remember an authenticated socket, its user and its access token."""
    _sockets[sid] = SocketEntry(user, claims["jti"])
    _store.add_token(claims["jti"], sid, max(1, claims["exp"] - claims["iat"]))


def entry(sid):
    """Return the socket's entry, or None once it is gone."""
    return _sockets.get(sid)


def local_sids():
    """Return the sids connected to this process."""
    return list(_sockets)


def enter(sid, room):
    """Count the socket in the room; True when it is its user's first socket there."""
    socket = _sockets[sid]
    return _store.add(room, sid, socket.user_id, socket.user_name)


def leave(sid, room, user_id):
    """Stop counting a socket in the room; True when it was its user's last socket there."""
    return _store.remove(room, sid, user_id)


def unregister(sid, rooms):
    """Forget a socket; return the rooms (of `rooms`) in which it was its user's last socket."""
    socket = _sockets.pop(sid, None)
    if socket is None:
        return []
    _store.remove_token(socket.jti, sid)
    return [room for room in rooms if _store.remove(room, sid, socket.user_id)]


def sockets_in_room(room):
    """Return {sid: (userId, userName)} of the sockets counted in the room, on any process."""
    return _store.sockets(room)


def online_users(room):
    """Return {userId: userName} of the users with a socket in the room, on any process."""
    return dict(sockets_in_room(room).values())


def sids_with_token(jti):
    """Return the sids, on any process, that authenticated with this access token."""
    return _store.token_sids(jti)
