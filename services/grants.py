"""The right to post, cached per socket: a socket that posts in a room it joined skips the membership read.

A grant is taken after a membership read that said "poster" (the join's, or a send's once the grant
expired) and lasts MEMBERSHIP_CACHE_SECONDS.
Every role change, removal, ban or room deletion revokes the grants of the user (or room)
on every process, through a control message (`services/live.py`); the expiry bounds one
missed while the processes could not reach each other. `generation()` counts revocations
seen by this process: a grant is given only if none came between its read and now, so a
change that lands during the read is never cached over.
"""

import time

from services import presence

_grants: dict[str, dict[str, float]] = {}  # sid -> {room id: monotonic time the grant expires}
_generation = 0


def generation() -> int:
    """How many revocations this process has seen; compare before and after a membership read."""
    return _generation


def has(sid: str, room: str) -> bool:
    """Whether the socket may post in the room without reading its membership."""
    return time.monotonic() < _grants.get(sid, {}).get(room, 0)


def give(sid: str, room: str, seconds: float, since: int) -> None:
    """Cache a right read at `since` (a `generation()`), unless a revocation came in between."""
    if since == _generation:
        _grants.setdefault(sid, {})[room] = time.monotonic() + seconds


def revoke(room: str | None = None, user_id: str | None = None) -> None:
    """Drop this process's grants for a room (of one user, or everyone's), or all of them."""
    global _generation
    _generation += 1
    sids = presence.sids_of(user_id) if user_id else list(_grants)
    for sid in sids:
        if room is None:
            _grants.pop(sid, None)
        else:
            _grants.get(sid, {}).pop(room, None)


def forget(sid: str) -> None:
    """A socket is gone."""
    _grants.pop(sid, None)
