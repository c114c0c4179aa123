"""Running as one of many processes: the shared presence store and its heartbeat."""

import logging

from services import notify, presence
from services.presence_redis import RedisStore
from utils.extensions import socketio

log = logging.getLogger(__name__)


def start(app):
    """With REDIS_URL set, share presence through Redis and keep this process marked alive."""
    url = app.config["REDIS_URL"]
    if not url:
        return None
    store = RedisStore(url, app.config["SOCKETIO_CHANNEL"], app.config["NODE_TTL_SECONDS"])
    store.heartbeat()
    presence.use_store(store)
    socketio.start_background_task(_heartbeat, store)
    return store


def _heartbeat(store):
    """Refresh this process's liveness; sweep out dead processes' sockets and tell their rooms."""
    while True:
        socketio.sleep(max(1, store.node_ttl / 3))
        store.heartbeat()
        for room, user_id, user_name in store.sweep():
            notify.notify_left(room, user_id, user_name)


def stop(store):
    """Disconnect this process's sockets (they reconnect to another process) and retire it."""
    for sid in presence.local_sids():
        socketio.server.disconnect(sid, namespace=notify.NAMESPACE)
    if store is not None:
        store.retire()
