"""Running as one of many processes, and surviving the loss of the others or of the link to them.

- Control messages (`services/live.py`) are run here on every process, in an app context.
- With REDIS_URL: presence is shared, each process beats every NODE_TTL_SECONDS / 3, and the
  survivors of a process that stopped beating sweep its users offline and broadcast again
  the messages it may have stored without broadcasting (each process drops ones it already
  delivered). A process that finds it was counted dead (stalled past its TTL) counts its
  sockets again and catches up.
- Catching up, when the queue comes back after a failure: this process may have missed
  removals, logouts and messages, so its sockets are checked against the database
  (`recheck`) and told to `resync` the rooms they are in. While the queue is down, the
  check runs every QUEUE_DOWN_RECHECK_SECONDS so a removal made elsewhere still lands.
- Sockets whose access token expired are disconnected (clients reconnect with a fresh one).
"""

import logging
import time
from datetime import timedelta

import pymongo
from bson import ObjectId
from flask import Flask

from model import message_log
from services import grants, live, messages, notify, presence, read_state, rooms, tokens
from services.presence_redis import RedisStore
from utils import outage, transport
from utils.extensions import socketio
from utils.timefmt import utcnow

log = logging.getLogger(__name__)
TICK_SECONDS = 1


def start(app: Flask) -> RedisStore | None:
    """Handle control messages and reconnects; with REDIS_URL, share presence and beat; without it, this is the
    only serving process, which hands out messages' positions from memory (`message_log.HeldPositions`) unless
    POSITIONS_IN_MEMORY is off."""
    controls = {"evict": live.evict_here, "grants": live.revoke_grants_here, "tokens": live.disconnect_tokens_here}
    for name, handler in controls.items():
        transport.on_control(name, _in_context(app, handler))
    transport.on_reconnect(_in_context(app, catch_up))
    transport.start(socketio.server, _in_context(app, messages.settled))
    store = None
    if app.config["REDIS_URL"]:
        store = RedisStore(
            app.config["REDIS_URL"],
            app.config["SOCKETIO_CHANNEL"],
            app.config["NODE_TTL_SECONDS"],
            app.config["REDIS_MAX_CONNECTIONS"],
        )
        store.heartbeat()
        presence.use_store(store)
    elif app.config["POSITIONS_IN_MEMORY"]:
        message_log.hold_positions()
        socketio.start_background_task(_write_positions, app)
    socketio.start_background_task(_maintain, app, store)
    return store


def _in_context(app, function):
    def run(*args):
        with app.app_context():
            return function(*args)

    return run


def _maintain(app, store):
    """Once a second: what is due of beating, sweeping, re-checking during an outage, expiring."""
    config = app.config
    beat = max(1, store.node_ttl / 3) if store else None
    due = {"beat": 0, "recheck": 0, "expiry": 0}
    while True:
        socketio.sleep(TICK_SECONDS)
        now = time.monotonic()
        try:
            with app.app_context():
                if store and now >= due["beat"]:
                    due["beat"] = now + beat
                    _beat(store)
                if transport.queue_down(socketio.server) and now >= due["recheck"]:
                    due["recheck"] = now + config["QUEUE_DOWN_RECHECK_SECONDS"]
                    recheck()
                if now >= due["expiry"]:
                    due["expiry"] = now + config["TOKEN_EXPIRY_CHECK_SECONDS"]
                    _disconnect_expired()
        except Exception:  # a database or Redis failure must not end the loop
            outage.log_failure(log, "cluster maintenance failed")


def _write_positions(app):
    """Once a second, the counters of the positions handed out here and this process's beat as their holder, in a
    loop of its own: a database that hangs holds this loop alone, not the disconnects of expired tokens. No deadline:
    one counted the time the write waited for its turn in a busy or stalled process (a connect storm), which made a
    database that answered at once look out of reach."""
    while True:
        socketio.sleep(TICK_SECONDS)
        try:
            with app.app_context():
                message_log.write_held_positions()
        except Exception:  # the loop must not end; the next beat says again what this one could not
            outage.log_failure(log, "the counters of the positions handed out here were not written")


def _beat(store):
    if not store.heartbeat():
        log.warning("this process was counted dead (stalled past NODE_TTL_SECONDS): counting its sockets again")
        presence.restore()
        catch_up()
    for channel, user_id, user_name in store.sweep():
        live.announce_left(channel, user_id, user_name)
    if store.claim_dead_nodes():
        since = utcnow() - timedelta(seconds=2 * store.node_ttl + 5)
        for message in messages.stored_since(since):
            notify.notify_message(message)


def catch_up() -> None:
    """After missing broadcasts: re-check the sockets against the database, then tell them to resync."""
    recheck()
    for sid, socket in presence.sockets().items():
        if socket.rooms:
            notify.notify_resync(sid, sorted(socket.rooms))


def recheck() -> None:
    """Make this process's sockets agree with the database: revoked tokens, removed members, deleted rooms."""
    sockets = presence.sockets()
    if not sockets:
        return
    revoked = tokens.revoked_among([socket.claims for socket in sockets.values()])
    for sid, socket in sockets.items():
        if revoked & tokens.revocation_keys(socket.claims):
            socketio.server.disconnect(sid, namespace=transport.NAMESPACE, ignore_queue=True)
    # The rooms each socket is in now: one it joins while the memberships are read was checked by its join, and is not
    # among what the read answers (it was taken out of the room, a join acknowledged).
    checked = {sid: list(socket.rooms) for sid, socket in sockets.items()}
    # Read as the joins of a storm are: a query with both rooms and users in `$in` scans the collection in SecantusDB.
    existing, roles = rooms.rooms_and_roles(
        [(ObjectId(channel), sockets[sid].user.id) for sid, channels in checked.items() for channel in channels]
    )
    for sid, socket in sockets.items():
        for channel in checked[sid]:
            room_id, admin = ObjectId(channel), socket.user.role == "admin"
            if room_id not in existing or ((room_id, socket.user.id) not in roles and not admin):
                live.leave_channel(sid, channel)
    grants.revoke()


def _disconnect_expired():
    for sid, socket in presence.sockets().items():
        if socket.expired():
            socketio.server.disconnect(sid, namespace=transport.NAMESPACE, ignore_queue=True)


def stop(store: RedisStore | None) -> None:
    """Disconnect this process's sockets (they reconnect to another process) and retire it."""
    for sid in presence.sockets():
        socketio.server.disconnect(sid, namespace=transport.NAMESPACE)
    if store is not None:
        store.retire()


def release(seconds: float) -> None:
    """At a stop, once no request is in flight: write the counters of the positions handed out here, and hold them
    no more (`message_log.release_positions`), then the senders' marker moves held here, within `seconds` (a
    database that hangs would hold the stop)."""
    if outage.database.down:  # already logged; each command would wait `seconds` for nothing
        return
    try:
        with pymongo.timeout(seconds):
            message_log.release_positions()
            read_state.write_held_markers()
    except Exception:  # the database out of reach: the next process reads what is stored past the held counters
        outage.log_failure(log, "the counters of the positions handed out here were not written")
