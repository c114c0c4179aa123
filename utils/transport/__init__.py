"""The Socket.IO transport: every use of python-socketio, python-engineio and eventlet internals.

What we change there, and why, is in this package and nowhere else:
- `packets.GuardedServer`: reserved and unknown event names, binary packets, anonymous
  connections (mixed into the Socket.IO server); `packets.TextFirstPacket`: packets told
  binary by their encoding, not by a walk of their data;
- `managers`: background publishing, reconnect hooks, control messages, at most one
  delivery of a chat message per process, deliveries counted for `/metrics`, each socket's
  rooms kept beside it so a disconnect does not search every room (the client managers);
- `frames`: one socket write per batch of WebSocket frames (eventlet);
- `sessions`: engine.io sockets with no greenlet or timer of their own while idle: a reader
  only while bytes wait (the HTTP server lets an upgraded connection go), a writer only while
  packets wait, one pinger per process (eventlet);
- `fanout`: a room broadcast's WebSocket frame built once and written straight to each idle
  WebSocket, the others queued as before (eventlet; the managers deliver through it);
- `ordering`: with Redis, a room's chat messages delivered to this process's sockets in
  position order, and a message's states in its versions' order, whichever process stored or
  changed them;
- `members()`: the sockets this process has in a Socket.IO room (`manager.rooms`).

`check_internals()` runs at start-up and refuses to start, naming what moved, when an
upgrade of those packages changed a name we rely on, (eventlet) a line whose behaviour
the order of `fanout`'s direct writes or `sessions` rests on, or a method `sessions`
replaces; the versions are pinned in requirements.txt.
"""

import collections
import hashlib
import inspect

import engineio.payload
import engineio.socket
import socketio

from utils.transport import fanout, hub, sessions
from utils.transport.frames import apply_mask, batched_driver
from utils.transport.managers import LocalManager, QueueManager, outage
from utils.transport.packets import EventBudgets, GuardedServer, TextFirstPacket

NAMESPACE = "/"

# (class, method, the parameters it must take first, after self)
METHODS = (
    (socketio.Server, "_handle_event", ("eio_sid", "namespace", "id", "data")),
    (socketio.Server, "_handle_eio_message", ("eio_sid", "data")),
    (socketio.Server, "_handle_eio_connect", ("eio_sid", "environ")),
    (socketio.Server, "_handle_connect", ("eio_sid", "namespace", "data")),
    (socketio.Server, "disconnect", ("sid", "namespace", "ignore_queue")),
    (socketio.Manager, "eio_sid_from_sid", ("sid", "namespace")),
    (socketio.Server, "_send_packet", ("eio_sid", "pkt")),
    (socketio.Manager, "sid_from_eio_sid", ("eio_sid", "namespace")),
    (socketio.Manager, "emit", ("event", "data", "namespace", "room", "skip_sid", "callback", "to")),
    (socketio.PubSubManager, "_handle_emit", ("message",)),
    (socketio.PubSubManager, "_publish", ("data",)),
    (socketio.PubSubManager, "_listen", ()),
    (socketio.PubSubManager, "_thread", ()),
    # fanout.FanoutManager replaces the manager's emit and delivers as it does
    (socketio.Manager, "emit", ("event", "data", "namespace", "room", "skip_sid", "callback", "to")),
    (socketio.Manager, "get_participants", ("namespace", "room")),
    (socketio.Server, "_send_eio_packet", ("eio_sid", "eio_pkt")),
    (engineio.socket.Socket, "send", ("pkt",)),
    (engineio.socket.Socket, "check_ping_timeout", ()),
    # sessions.LeanSocket
    (engineio.socket.Socket, "close", ("wait", "abort", "reason")),
    (engineio.socket.Socket, "receive", ("pkt",)),
    (engineio.Server, "start_background_task", ("target",)),
    (engineio.Server, "get_queue_empty_exception", ()),
    # packets.TextFirstPacket
    (socketio.packet.Packet, "__init__", ("packet_type", "data", "namespace", "id", "binary", "encoded_packet")),
    (socketio.packet.Packet, "encode", ()),
)
# Eventlet only: what `frames.BatchedWebSocket` calls on eventlet's WebSocket, and the unmasking
# `frames.apply_mask` replaces (a static method: its first parameter, `data`, is not checked).
EVENTLET_METHODS = (
    ("_pack_message", ("message",)),
    ("_send", ("frame",)),
    ("_send_closing_frame", ("ignore_send_errors", "close_data")),
    ("_apply_mask", ("mask", "length", "offset")),
)


# Eventlet only: lines whose behaviour the order of fanout's direct writes rests on (its docstring).
# (owner's module, owner, method, a line it must still contain)
BEHAVIOURS = (
    # a packet for a socket goes through its queue, whose put starts the writer (sessions)
    ("engineio.socket", "Socket", "send", "self.queue.put(pkt)"),
    ("engineio.socket", "Socket", "close", "self.queue.put(None)"),
    # sessions.adopt: the socket exists when the connect event runs, its first ping is scheduled after
    ("engineio.server", "Server", "_handle_connect", "self.sockets[sid] = s"),
    ("engineio.server", "Server", "_handle_connect", "s.schedule_ping()"),
    ("engineio.socket", "Socket", "receive", "self.schedule_ping()"),
    # sessions.LeanSocket.queue: the socket's queue, made once by engine.io and read as `self.queue` everywhere
    ("engineio.base_socket", "BaseSocket", "__init__", "self.queue = self.server.create_queue()"),
    # a pong that is late closes the socket (sessions shuts it down), checked by one task per process
    ("engineio.server", "Server", "_service_task", "s.check_ping_timeout()"),
    ("engineio.socket", "Socket", "check_ping_timeout", "reason=self.server.reason.PING_TIMEOUT)"),
    # fanout calls check_ping_timeout only for a socket this says is late
    (
        "engineio.socket",
        "Socket",
        "check_ping_timeout",
        "if last_ping and time.time() - last_ping > self.server.ping_timeout:",
    ),
    # eventlet's own writes (a pong, the closing frame) go through _send, which frames.BatchedWebSocket replaces
    ("eventlet.websocket", "RFC6455WebSocket", "send", "self._send(payload)"),
    # frames.BatchedWebSocket.direct: false before the socket turns closing (sessions.LeanSocket.close extends
    # engine.io's) and before eventlet's closing frame goes out (through send, then _send)
    ("engineio.socket", "Socket", "close", "self.closing = True"),
    ("eventlet.websocket", "RFC6455WebSocket", "_send_closing_frame", "self.send(data, control_code=8)"),
    # a released lock is handed to a waiter later: free, but promised (fanout checks `_waiters`);
    # taking a free lock nobody waits for does not yield
    ("eventlet.semaphore", "Semaphore", "release", "schedule_call_global(0, self._do_acquire)"),
    ("eventlet.semaphore", "Semaphore", "acquire", "if self.counter <= 0 or self._waiters:"),
    # sessions.release_http_buffers: the environ's set_idle is a closure over the connection's protocol, whose
    # buffered files a WebSocket does not use (it reads and writes the socket)
    ("eventlet.wsgi", "HttpProtocol", "get_environ", "self.conn_state[2] = STATE_IDLE"),
    # sessions.detach: once its greenlet ends, the HTTP server shuts down and closes the connection through the
    # protocol's `connection` and the accept loop's `conn[1]`, which a detached connection replaces; eventlet's
    # WebSocket server sends a closing frame after the handler returns, which it skips once
    ("eventlet.wsgi", "HttpProtocol", "finish", "greenio.shutdown_safe(self.connection)"),
    ("eventlet.wsgi", "HttpProtocol", "finish", "self.connection.close()"),
    ("eventlet.wsgi", None, "server", "greenio.shutdown_safe(conn[1])"),
    ("eventlet.wsgi", None, "server", "conn[1].close()"),
    ("eventlet.websocket", "WebSocketWSGI", "__call__", "ws._send_closing_frame(True)"),
    # sessions.connection_pool: every greenthread of the pool ends through _spawn_done, which gives its place back
    # and wakes waitall once every place is free; waitall waits while running() counts any
    ("eventlet.greenpool", "GreenPool", "spawn", "gt.link(self._spawn_done)"),
    ("eventlet.greenpool", "GreenPool", "_spawn_done", "self.sem.release()"),
    ("eventlet.greenpool", "GreenPool", "_spawn_done", "self.coroutines_running.remove(coro)"),
    ("eventlet.greenpool", "GreenPool", "_spawn_done", "if self.sem.balance == self.size:"),
    ("eventlet.greenpool", "GreenPool", "waitall", "if self.running():"),
    # sessions.LeanSocket.park: a listener's throwback is called only while its greenlet lives (the hub's there)
    ("eventlet.hubs.hub", "BaseHub", "close_one", "if not listener.greenlet.dead:"),
    (
        "eventlet.websocket",
        "RFC6455WebSocket",
        "close",
        "self._send_closing_frame(close_data=close_data, ignore_send_errors=True)",
    ),
    ("eventlet.websocket", "RFC6455WebSocket", "close", "self.socket.shutdown(socket.SHUT_WR)"),
    ("eventlet.websocket", "WebSocketWSGI", "_handle_hybi_request", "sock = environ['eventlet.input'].get_socket()"),
    # sessions.rfc6455_only: the old draft protocol's handshake is refused with a 400 once legacy versions are off
    ("eventlet.websocket", "WebSocketWSGI", "__call__", "elif self.support_legacy_versions:"),
    # a broadcast from Redis reaches this process's sockets through the manager's emit (FanoutManager)
    ("socketio.pubsub_manager", "PubSubManager", "_handle_emit", "super().emit("),
)

# Eventlet only: what sessions.LeanSocket replaces or mirrors, as it was written against (a digest of the source).
# A new version of one of these is read and sessions brought in line with it before the digest is changed here.
REPLACED = (
    ("engineio.socket", "Socket", "_websocket_handler", "58afe122719282de"),
    ("engineio.socket", "Socket", "_send_ping", "21861287bd38dedc"),
    ("engineio.socket", "Socket", "schedule_ping", "fe316639159cd70d"),
    ("engineio.socket", "Socket", "poll", "d7d705066fd3b948"),
    ("engineio.socket", "Socket", "handle_post_request", "5be8170455a3482c"),
)

# Every mode: what managers.IndexedRooms replaces (a digest of the source, as above), and the lines its index of
# each socket's rooms rests on: every change to a room goes through basic_enter_room and basic_leave_room; a
# namespace's sockets waiting to connect are a list it stores (which IndexedRooms keeps as a set).
MANAGER_REPLACED = (
    ("socketio.base_manager", "BaseManager", "basic_disconnect", "2933b50bc4b2ea7b"),
    ("socketio.base_manager", "BaseManager", "get_rooms", "56a1017f85af9f91"),
)
MANAGER_BEHAVIOURS = (
    (
        "socketio.base_manager",
        "BaseManager",
        "pre_connect",
        "self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)",
    ),
    ("socketio.base_manager", "BaseManager", "pre_connect", "self.pending_connect[namespace] = []"),
    ("socketio.base_manager", "BaseManager", "basic_close_room", "self.basic_leave_room(sid, namespace, room)"),
    (
        "socketio.manager",
        "Manager",
        "enter_room",
        "return self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)",
    ),
    ("socketio.manager", "Manager", "leave_room", "return self.basic_leave_room(sid, namespace, room)"),
    ("socketio.manager", "Manager", "disconnect", "return self.basic_disconnect(sid, namespace)"),
)


# Every mode: packets.TextFirstPacket's type is decided by the stock packet when it is made, and its encoding is
# the JSON encoder's, which refuses bytes.
PACKET_BEHAVIOURS = (
    ("socketio.packet", "Packet", "__init__", "(binary or (binary is None and self.data_is_binary("),
    ("socketio.packet", "Packet", "encode", "encoded_packet += self.json.dumps(data, separators=(',', ':'))"),
)


class InternalsMoved(RuntimeError):
    """An upgraded python-socketio, python-engineio or eventlet no longer has what we patch."""


def check_internals(server, methods=METHODS, behaviours=BEHAVIOURS, replaced=REPLACED):
    """Raise InternalsMoved naming every patched internal that is missing, takes other parameters or (eventlet)
    no longer does what fanout and sessions rely on, or is no longer the version sessions replaces."""
    moved = []
    if server.eio.async_mode == "eventlet":
        from eventlet.greenio import GreenSocket  # imported only where eventlet serves
        from eventlet.semaphore import Semaphore
        from eventlet.websocket import RFC6455WebSocket

        methods = (
            *methods,
            *((RFC6455WebSocket, name, parameters) for name, parameters in EVENTLET_METHODS),
            (Semaphore, "acquire", ("blocking",)),
            (Semaphore, "release", ()),
            (GreenSocket, "sendall", ("data",)),
        )
        moved += moved_behaviours(behaviours) + changed_sources(replaced) + moved_attributes(server)
    moved += moved_behaviours(MANAGER_BEHAVIOURS + PACKET_BEHAVIOURS) + changed_sources(MANAGER_REPLACED)
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


def _method(module, owner, name):
    """`module.owner.name` (`module.name` when owner is None), or None when it is gone."""
    import importlib

    scope = importlib.import_module(module)
    return getattr(scope if owner is None else getattr(scope, owner, None), name, None)


def _name(module, owner, name):
    return ".".join(part for part in (module, owner, name) if part)


def moved_behaviours(behaviours):
    """What moved among BEHAVIOURS: a method gone, or no longer containing its line."""
    moved = []
    for module, owner, name, line in behaviours:
        method = _method(module, owner, name)
        if method is None:
            moved.append(f"{_name(module, owner, name)} is gone")
        elif line not in inspect.getsource(method):
            moved.append(f"{_name(module, owner, name)} no longer does `{line}`")
    return moved


def changed_sources(replaced):
    """Which of the REPLACED methods are gone or no longer the source they were (a sha256 prefix)."""
    changed = []
    for module, owner, name, digest in replaced:
        method = _method(module, owner, name)
        if method is None:
            changed.append(f"{module}.{owner}.{name} is gone")
        elif hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[: len(digest)] != digest:
            changed.append(f"{module}.{owner}.{name} changed (utils/transport replaces it)")
    return changed


def moved_attributes(server):
    """What moved among the attributes fanout, frames and sessions read on engine.io's sockets and eventlet's WebSockets
    (eventlet)."""
    from eventlet.greenio import GreenSocket
    from eventlet.websocket import RFC6455WebSocket

    moved = []
    if not isinstance(getattr(server.eio, "sockets", None), dict):
        moved.append("engineio's server.sockets is no longer a dict")
    if not callable(getattr(server.eio, "handlers", {}).get("connect")):
        moved.append("engineio's server.handlers has no connect handler")
    socket = engineio.socket.Socket(server.eio, "probe")
    names = ("queue", "upgraded", "upgrading", "connected", "closed", "closing", "last_ping")
    missing = [name for name in names if not hasattr(socket, name)]
    if missing or not isinstance(getattr(socket.queue, "queue", None), collections.deque):
        moved.append(f"engineio's Socket has no {', '.join(missing) or 'queue.queue deque'}")
    ws = RFC6455WebSocket(None, {})
    if "_msgs" in inspect.getsource(RFC6455WebSocket) or "_msgs" not in vars(ws):
        moved.append("eventlet's RFC6455WebSocket reads or no longer makes _msgs, which sessions drops")
    lock = getattr(ws, "_sendlock", None)
    if not (
        isinstance(getattr(lock, "counter", None), int)
        and isinstance(getattr(lock, "_waiters", None), collections.deque)
    ):
        moved.append("eventlet's RFC6455WebSocket._sendlock is no longer a Semaphore with counter and _waiters")
    if not isinstance(getattr(ws, "extensions", None), dict) or not {"websocket_closed", "socket"} <= set(vars(ws)):
        moved.append("eventlet's RFC6455WebSocket has no extensions dict, websocket_closed or socket")
    from eventlet.wsgi import HttpProtocol

    if not all(isinstance(getattr(HttpProtocol, name, None), int) for name in ("rbufsize", "wbufsize")):
        moved.append("eventlet's wsgi.HttpProtocol has no rbufsize and wbufsize")
    green = GreenSocket()
    try:
        if getattr(getattr(green, "fd", None), "gettimeout", lambda: None)() != 0.0:
            moved.append("eventlet's GreenSocket.fd is no longer a non-blocking socket")
    finally:
        green.close()
    return moved


def connection_pool(server, size):
    """The pool of greenlets eventlet's HTTP server serves `server`'s connections with, at most `size` at once,
    WebSockets counted until they close (sessions.connection_pool)."""
    server.eio.connection_pool = sessions.connection_pool(size)
    return server.eio.connection_pool


def client_manager(config):
    """The client manager: over Redis when REDIS_URL is set, else this process alone."""
    if config["REDIS_URL"]:
        return QueueManager(
            config["REDIS_URL"],
            config["SOCKETIO_CHANNEL"],
            config["PUBLISH_TIMEOUT_SECONDS"],
            order_hold=config["ORDER_HOLD_MS"] / 1000,
            order_max_wait=2 * config["GAP_SECONDS"],  # a dead writer's position is filled after GAP_SECONDS
        )
    return LocalManager()


def install(app, server, client_events, event_owner):
    """Guard the server's packets, decline compression; under eventlet keep idle sockets lean, batch frames and
    write broadcasts directly."""
    check_internals(server)
    server.__class__ = type("ChatServer", (GuardedServer, fanout.DirectAcks, type(server)), {})
    server.packet_class = TextFirstPacket
    for event in ("connect", "message"):  # engine.io holds the methods it was given, bound before the mixin
        server.eio.on(event, getattr(server, f"_handle_eio_{event}"))
    server.client_events = frozenset(client_events)
    server.auth_timeout = app.config["AUTH_TIMEOUT_SECONDS"]
    if app.config["RATELIMIT_ENABLED"]:
        server.event_budgets = EventBudgets(app.config["SOCKET_EVENT_RATE"], app.config["SOCKET_EVENT_BURST"])
        server.event_owner = event_owner
    server.eio.ping_interval = app.config["SOCKET_PING_INTERVAL"]
    server.eio.ping_timeout = app.config["SOCKET_PING_TIMEOUT"]
    # A POST is bounded by its bytes (SOCKET_MAX_BUFFER), which is what socket.io-client fills when it sends what it
    # buffered; engine.io's own bound of 16 packets a payload dropped the rest of a polling client's burst unanswered.
    engineio.payload.Payload.max_decode_packets = server.eio.max_http_buffer_size // 2 + 1
    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = DeclineCompression(app.wsgi_app)
    if server.eio.async_mode == "eventlet":
        from eventlet.websocket import RFC6455WebSocket

        server.eio._async = sessions.rfc6455_only(batched_driver(server.eio._async))
        RFC6455WebSocket._apply_mask = staticmethod(apply_mask)
        sessions.install(server)
        fanout.install(server)


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


def start(server, settle):
    """A serving process publishes in the background (jobs publish as they emit) and delivers each room's messages
    in position order, asking `settle(room, first, last)` what is stored when one is late (`ordering.RoomOrder`)."""
    if isinstance(server.manager, QueueManager):
        server.manager.start(settle)


def ordering(server):
    """This process's `ordering.RoomOrder` (a serving process with a message queue), else None."""
    manager = server.manager
    return manager.order if isinstance(manager, QueueManager) else None


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
