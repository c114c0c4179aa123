"""The Socket.IO transport: every use of python-socketio, python-engineio and eventlet internals.

What we change there, and why, is in this package and nowhere else:
- `packets.GuardedServer`: reserved and unknown event names, binary packets, anonymous
  connections (mixed into the Socket.IO server);
- `managers`: background publishing, reconnect hooks, control messages, at most one
  delivery of a chat message per process, deliveries counted for `/metrics` (the client managers);
- `frames`: one socket write per batch of WebSocket frames (eventlet);
- `members()`: the sockets this process has in a Socket.IO room (`manager.rooms`).

`check_internals()` runs at start-up and refuses to start, naming what moved, when an
upgrade of those packages changed a name we rely on; the versions are pinned in
requirements.txt.
"""

import inspect

import socketio

from utils.transport import hub
from utils.transport.frames import apply_mask, batched_driver
from utils.transport.managers import LocalManager, QueueManager, outage
from utils.transport.packets import GuardedServer

NAMESPACE = "/"

# (class, method, the parameters it must take first, after self)
METHODS = (
    (socketio.Server, "_handle_event", ("eio_sid", "namespace", "id", "data")),
    (socketio.Server, "_handle_eio_message", ("eio_sid", "data")),
    (socketio.Server, "_handle_eio_connect", ("eio_sid", "environ")),
    (socketio.Server, "_send_packet", ("eio_sid", "pkt")),
    (socketio.Manager, "sid_from_eio_sid", ("eio_sid", "namespace")),
    (socketio.Manager, "emit", ("event", "data", "namespace", "room", "skip_sid", "callback", "to")),
    (socketio.PubSubManager, "_handle_emit", ("message",)),
    (socketio.PubSubManager, "_publish", ("data",)),
    (socketio.PubSubManager, "_listen", ()),
    (socketio.PubSubManager, "_thread", ()),
)
# Eventlet only: what `frames.BatchedWebSocket` calls on eventlet's WebSocket, and the unmasking
# `frames.apply_mask` replaces (a static method: its first parameter, `data`, is not checked).
EVENTLET_METHODS = (
    ("_pack_message", ("message",)),
    ("_send", ("frame",)),
    ("_apply_mask", ("mask", "length", "offset")),
)


class InternalsMoved(RuntimeError):
    """An upgraded python-socketio, python-engineio or eventlet no longer has what we patch."""


def check_internals(server, methods=METHODS):
    """Raise InternalsMoved naming every patched internal that is missing or takes other parameters."""
    if server.eio.async_mode == "eventlet":
        from eventlet.websocket import RFC6455WebSocket  # imported only where eventlet serves

        methods = (*methods, *((RFC6455WebSocket, name, parameters) for name, parameters in EVENTLET_METHODS))
    moved = []
    for owner, name, parameters in methods:
        method = getattr(owner, name, None)
        if method is None:
            moved.append(f"{owner.__module__}.{owner.__name__}.{name} is gone")
        elif tuple(inspect.signature(method).parameters)[1 : len(parameters) + 1] != parameters:
            moved.append(f"{owner.__module__}.{owner.__name__}.{name} no longer takes ({', '.join(parameters)})")
    if not isinstance(getattr(server, "manager_initialized", None), bool):
        moved.append("socketio's server.manager_initialized is gone")
    if not isinstance(getattr(server.manager, "rooms", None), dict):
        moved.append("socketio's manager.rooms is no longer a dict")
    if not {"queue", "websocket"} <= set(getattr(server.eio, "_async", None) or ()):
        moved.append("engineio's driver table (_async) has no queue or websocket")
    if moved:
        raise InternalsMoved("utils/transport patches internals that changed: " + "; ".join(moved))


def client_manager(config):
    """The client manager: over Redis when REDIS_URL is set, else this process alone."""
    if config["REDIS_URL"]:
        return QueueManager(config["REDIS_URL"], config["SOCKETIO_CHANNEL"], config["PUBLISH_TIMEOUT_SECONDS"])
    return LocalManager()


def install(app, server, client_events):
    """Guard the server's packets, decline compression, batch frames under eventlet."""
    check_internals(server)
    server.__class__ = type("ChatServer", (GuardedServer, type(server)), {})
    for event in ("connect", "message"):  # engine.io holds the methods it was given, bound before the mixin
        server.eio.on(event, getattr(server, f"_handle_eio_{event}"))
    server.client_events = frozenset(client_events)
    server.auth_timeout = app.config["AUTH_TIMEOUT_SECONDS"]
    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = DeclineCompression(app.wsgi_app)
    if server.eio.async_mode == "eventlet":
        from eventlet.websocket import RFC6455WebSocket

        server.eio._async = batched_driver(server.eio._async)
        RFC6455WebSocket._apply_mask = staticmethod(apply_mask)


class DeclineCompression:
    """Drop the client's permessage-deflate offer: it costs one compression per recipient of every broadcast."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return self.app(environ, start_response)


def members(server, channel):
    """The sids this process has in a Socket.IO room."""
    return list(server.manager.rooms.get(NAMESPACE, {}).get(channel, ()))


def control(server, name, payload):
    """Run the handlers of control message `name` on every process, this one first."""
    server.emit(hub.CONTROL_PREFIX + name, payload, namespace=NAMESPACE)


def start(server):
    """A serving process publishes in the background (jobs publish as they emit)."""
    if isinstance(server.manager, QueueManager):
        server.manager.start()


def queue_down(server):
    """Whether this process has lost its link to the others."""
    manager = server.manager
    return isinstance(manager, QueueManager) and (not manager.listening or outage.down)


def queue_status(server):
    """(up, broadcasts waiting to be published) of the message queue, or None without one."""
    manager = server.manager
    if not isinstance(manager, QueueManager):
        return None
    return not queue_down(server), len(manager.backlog)


on_control = hub.on_control
on_reconnect = hub.on_reconnect
