"""Who is connected, and in which rooms, counted per user across every server process.

This process keeps its own sockets (sid -> user, token claims, joined rooms): that is the
truth for what to evict, disconnect or resync here. A store keeps the shared picture for
online lists: in memory for one process, in Redis (`services/presence_redis.py`) when
REDIS_URL is set. A user with several tabs, on any processes, is online in a room while any
of their sockets is in it: `enter` reports only the first socket and `leave` only the last.
"""

import time
from dataclasses import dataclass, field

from model.user import User


@dataclass
class SocketEntry:
    user: User
    claims: dict
    rooms: set[str] = field(default_factory=set)

    @property
    def user_id(self) -> str:
        return str(self.user.id)

    @property
    def user_name(self) -> str:
        return self.user.username

    @property
    def jti(self) -> str:
        return self.claims["jti"]

    @property
    def family(self) -> str | None:
        return self.claims.get("fam")

    def expired(self) -> bool:
        """Whether the access token the socket connected with has expired."""
        return time.time() >= self.claims["exp"]


class MemoryStore:
    """The shared picture for a single process."""

    def __init__(self):
        self.rooms = {}  # room id -> {sid: (user id, user name)}

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


_sockets: dict[str, SocketEntry] = {}
_by_user: dict[str, set[str]] = {}
_store = MemoryStore()


def use_store(store) -> None:
    """Replace the shared store (Redis when REDIS_URL is set)."""
    global _store
    _store = store


# The claims a socket's entry needs (its token's revocation and expiry); the rest of a decoded token is a kilobyte
# a socket.
KEPT_CLAIMS = ("jti", "fam", "exp")


def register(sid: str, user: User, claims: dict) -> None:
    """Remember an authenticated socket, its user and its access token's claims (those in KEPT_CLAIMS)."""
    _sockets[sid] = SocketEntry(user, {name: claims[name] for name in KEPT_CLAIMS if name in claims})
    _by_user.setdefault(str(user.id), set()).add(sid)


def entry(sid: str) -> SocketEntry | None:
    """Return the socket's entry, or None once it is gone."""
    return _sockets.get(sid)


def user_of(sid: str) -> str:
    """The id of the socket's user; the sid itself once its entry is gone."""
    socket = _sockets.get(sid)
    return socket.user_id if socket is not None else sid


def sockets() -> dict[str, SocketEntry]:
    """This process's sockets."""
    return dict(_sockets)


def count() -> int:
    """How many sockets this process has."""
    return len(_sockets)


def sids_of(user_id: str) -> set[str]:
    """This process's sockets of one user."""
    return set(_by_user.get(user_id, ()))


def enter(sid: str, room: str) -> bool:
    """Count the socket in the room; True when it is its user's first socket there."""
    socket = _sockets[sid]
    socket.rooms.add(room)
    return _store.add(room, sid, socket.user_id, socket.user_name)


def leave(sid: str, room: str) -> bool:
    """Stop counting a socket in the room; True when it was its user's last socket there."""
    socket = _sockets.get(sid)
    if socket is None or room not in socket.rooms:
        return False
    socket.rooms.discard(room)
    return _store.remove(room, sid, socket.user_id)


def unregister(sid: str) -> tuple[SocketEntry | None, list[str]]:
    """Forget a socket; return its entry and the rooms in which it was its user's last socket."""
    socket = _sockets.pop(sid, None)
    if socket is None:
        return None, []
    sids = _by_user.get(socket.user_id, set())
    sids.discard(sid)
    if not sids:
        _by_user.pop(socket.user_id, None)
    return socket, [room for room in socket.rooms if _store.remove(room, sid, socket.user_id)]


def restore() -> None:
    """Count every socket of this process again (the shared store lost them: this process was swept)."""
    for sid, socket in list(_sockets.items()):
        for room in socket.rooms:
            _store.add(room, sid, socket.user_id, socket.user_name)


def online_users(room: str) -> dict[str, str]:
    """Return {userId: userName} of the users with a socket in the room, on any process."""
    return dict(_store.sockets(room).values())
