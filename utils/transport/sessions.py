"""engine.io sessions under eventlet with no greenlet and no timer of their own while idle.

engine.io gives every connection, besides the greenlet that reads it, a writer greenlet
blocked on its packet queue with a timeout, a greenlet sleeping until its next ping, and a
timeout on every read: three greenlets and three timers for a connection that says nothing.
Each greenlet keeps a Python frame stack of its own (at least a page), a copy of its part
of the C stack and its objects; with 5000 idle connections that was most of the memory
per connection. Here (`LeanSocket`, mixed into each engine.io socket as it connects):

- an idle WebSocket has no greenlet at all: once the handshake is done, the HTTP server's
  greenlet lets the connection go and ends (`detach`), and the connection waits for its next
  frame as a listener of the hub (`park`), which starts a greenlet to read when bytes arrive
  (`wake`); that greenlet reads what has arrived, parks the connection again and ends. A
  connection's first greenlet kept its Python frame stack (a 16 KiB chunk), a copy of its part
  of the C stack, and the HTTP request's objects for the connection's whole life;
- a packet queued for an open WebSocket starts a writer greenlet that writes what is queued
  and ends as soon as the queue is empty (`write_queue`), and the empty queue goes with it
  until the next packet is queued; a room broadcast usually needs neither
  (`fanout.DirectWriter` writes it straight to the socket);
- one `Pinger` per process sends every socket its pings, in the order they fall due, from
  one greenlet with one timer (engine.io's own `_service_task`, one per process, still
  closes a socket whose pong is late);
- a socket closed because its client stopped answering pings is shut down at once, which
  ends a read or a write blocked on a client that stopped reading (the timeout of every
  read and write did that before);
- a POST whose body is no payload ends its session with a 400 (engine.io answered 200 and
  logged a traceback);
- a poll's response holds at most `POLL_PACKETS` packets, which python-engineio's client
  takes (engine.io answers with everything queued, and that client drops the connection);
  a ping goes out in the next poll's response, ahead of a backlog, so that a client draining
  a backlog answers it in time;
- a WebSocket that closes (but aborts) has `ping_timeout` to take what is queued and answer
  the closing frame (`give_up_after`), even when its client stopped reading; a polling
  session closes without waiting for a poll that may never come;
- eventlet's HTTP server keeps a 16 KiB write buffer and an 8 KiB read buffer for every
  connection's lifetime: 4 KiB each (`HTTP_BUFFER`), and a WebSocket, which reads and writes
  its socket itself once the handshake is done, lets both go (`release_http_buffers`).

`_websocket_handler` replaces engine.io's; it does what engine.io's does, but for the writer
greenlet, the timeout and the reading loop (`read_packets` does what the loop did).
`check_internals` refuses to start when engine.io's version of a replaced method is no longer
the one this was written against (`REPLACED`), or a line of eventlet's `detach` and `park`
rest on moved (`BEHAVIOURS`).
"""

import io
import logging
import socket
import sys
import time
from collections import deque

from engineio import exceptions, packet, payload

from utils.transport.frames import BatchedWebSocket

log = logging.getLogger("chat.transport")
# The most packets a poll's response holds: python-engineio's client drops a connection whose response holds more
# (`Payload.max_decode_packets`), so a polling python-socketio client in a busy room would lose what was queued.
POLL_PACKETS = 16
# The most packets a WebSocket's reader takes in before the other greenlets run (about 1 ms of refusals in a flood).
READ_TURN = 32


class LeanSocket:
    """Mixed into each engine.io socket by `adopt`: the writer greenlet exists only while packets wait, pings come
    from the process's `Pinger`."""

    listener = None  # the hub's, while the WebSocket waits for a frame with no greenlet reading it
    websocket = None  # the BatchedWebSocket, once the WebSocket handshake is done (fanout writes to it too)
    writer = None  # the GreenThread writing the queue, while it has packets
    ping_delivered = None  # the `last_ping` of the last ping a poll's response carried
    closing_timer = None  # once the session closed: when the server stops waiting for the client to read and answer
    _queue = None  # engine.io's packet queue (`queue`), while the socket has one
    open_queue = False  # the WebSocket is open: a put starts a writer, and the queue it empties goes with it

    @property
    def queue(self):
        """engine.io's packet queue, made when first needed: an open WebSocket's goes once its writer has emptied it
        (`write_queue`), and an idle connection keeps none (an eventlet queue, its deque, three sets and an event,
        1.6 KiB)."""
        queue = self._queue
        if queue is None:
            queue = self._queue = self.server.create_queue()
            if self.open_queue:
                queue.on_put = self.start_writer
        return queue

    def schedule_ping(self):
        # As engine.io's: only once the previous ping has been answered (a pong clears last_ping).
        if self.last_ping:
            self.last_ping = None
            self.server.pinger.schedule(self)

    def receive(self, pkt):
        # Each event's handler starts in a greenlet of its own, and a disconnect is handled at once: events read in
        # the same write as the namespace's `41` (or engine.io's close) would meet a namespace already left, which
        # python-socketio drops without handling them. Their handlers start first.
        if pkt.packet_type == packet.CLOSE or (pkt.packet_type == packet.MESSAGE and str(pkt.data)[:1] == "1"):
            self.server.sleep(0)
        super().receive(pkt)

    def close(self, wait=True, abort=False, reason=None):
        if self.websocket is None:
            # A poller may never poll again, so nobody waits for it to take what is queued: engine.io's close waits,
            # and when it closes a session for a packet it refuses, it waits in that POST's request, for good.
            wait = False
        else:
            self.websocket.direct = False  # closing: broadcasts go through engine.io, which knows what it takes
            if not abort and not self.closing and not self.closed:
                # What is queued, then the closing frame, then the client's: all within ping_timeout, even when the
                # client stopped reading and the writer waits on the kernel (engine.io's close may wait with it).
                self.give_up_after(self.server.ping_timeout)
        super().close(wait, abort, reason)
        if reason == self.server.reason.PING_TIMEOUT and self.websocket is not None:
            log.debug("%s: pong late, connection shut down (writing: %s)", self.sid, self.writer is not None)
            self.websocket.abort()  # a read or a write may be waiting on a client that no longer reads

    def handle_post_request(self, environ):
        """engine.io's, but a body that is no payload (not UTF-8, a packet engine.io cannot read, more packets than a
        payload holds) is a client error: the session ends with a 400, as for engine.io's own errors. engine.io
        logged a traceback, dropped the whole POST and answered 200, so the client never learnt. A chunked body (a
        proxy may send one) is read too: engine.io read Content-Length bytes only, none, and dropped the body."""
        limit, body = self.server.max_http_buffer_size, environ["wsgi.input"]
        try:
            if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
                data = body.read(limit + 1)  # eventlet's input takes the chunks apart
            else:
                length = int(environ.get("CONTENT_LENGTH") or "0")
                data = body.read(length) if length <= limit else None
            if data is None or len(data) > limit:
                raise exceptions.ContentTooLongError()
            packets = payload.Payload(encoded_payload=data.decode("utf-8")).packets
        except (ValueError, KeyError, RecursionError) as error:  # bad UTF-8 is a ValueError, JSONP `d=` a KeyError
            raise exceptions.EngineIOError(f"unreadable payload: {error}") from None
        except OSError as error:  # a chunked body cut off: eventlet's input met the end inside a chunk
            raise exceptions.EngineIOError(f"incomplete body: {error}") from None
        for pkt in packets:
            self.receive(pkt)

    def poll(self):
        """engine.io's, but at most POLL_PACKETS packets a response: the rest wait, in order, for the next poll. A
        ping queued behind them comes in this one: its pong is due within ping_timeout of the ping being queued."""
        empty = self.server.get_queue_empty_exception()
        try:
            packets = [self.queue.get(timeout=self.server.ping_interval + self.server.ping_timeout)]
            self.queue.task_done()
        except empty:
            raise exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        ping_waits = self.last_ping is not None and self.last_ping != self.ping_delivered  # queued, not yet sent
        while len(packets) < POLL_PACKETS - ping_waits:  # a place for it
            try:
                pkt = self.queue.get(block=False)
            except empty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put(None)  # the session is closing: the next poll learns it
                break
            packets.append(pkt)
        if ping_waits and all(pkt.packet_type != packet.PING for pkt in packets):
            packets += self.take_ping()
        if any(pkt.packet_type == packet.PING for pkt in packets):
            self.ping_delivered = self.last_ping  # the queue is not searched for it again
        return packets

    def take_ping(self):
        """The ping waiting in the queue, taken out of it ([] when there is none): engine.io's ping is a heartbeat,
        in no order with the rest (the queue is eventlet's, its deque and count of unfinished packets its own)."""
        ping = next((pkt for pkt in self.queue.queue if pkt is not None and pkt.packet_type == packet.PING), None)
        if ping is None:
            return []
        self.queue.queue.remove(ping)
        self.queue.task_done()  # as a get would have
        return [ping]

    def _websocket_handler(self, ws):
        """engine.io's handler for the WebSocket transport, but no writer greenlet, no read timeout, and the
        connection's packets read by `read_packets` once the handshake is done (the handler returns then)."""
        protocol = http_protocol(ws.environ)
        release_http_buffers(protocol)
        # Every WebSocket here is RFC 6455's (`rfc6455_only`): the old protocol's queue of parsed messages (760 bytes)
        # goes, as its `wait` reads frames.
        del ws._msgs
        ws = self.websocket = BatchedWebSocket(ws)
        ws.socket.settimeout(None)  # an idle read keeps no timer: pings tell a gone client (close, above)

        if self.connected:
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade

            pkt = self.next_packet()
            decoded_pkt = upgrade_packet(pkt)
            if decoded_pkt is None or decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return []
            ws.send(packet.Packet(packet.PONG, data="probe").encode())
            self.queue.put(packet.Packet(packet.NOOP))  # end poll

            pkt = self.next_packet()
            decoded_pkt = upgrade_packet(pkt)
            if decoded_pkt is None or decoded_pkt.packet_type != packet.UPGRADE:
                self.upgraded = False
                self.server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.", self.sid, pkt
                )
                self.upgrading = False
                return []
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        # From now on every packet queued starts a writer if none runs; what waits already goes now.
        self.open_queue = True
        self.queue.on_put = self.start_writer
        self.start_writer()
        if not self.closing and not self.closed:  # a socket closed while it upgraded stays closed to fanout
            ws.open_to_fanout()
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        detach(ws, protocol, self.server.connection_pool)  # the HTTP server's greenlet ends: the connection is ours
        self.park()
        return []

    def next_packet(self):
        data = self.websocket.wait()
        if data and len(data) > self.server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    def park(self):
        """Wait for the next frame without a greenlet: the hub calls `wake` once the connection is readable (or
        closed, or its descriptor reused)."""
        from eventlet.hubs import get_hub  # imported only where eventlet serves

        hub = get_hub()
        self.listener = hub.add(hub.READ, self.websocket.socket.fileno(), self.wake, self.wake, None)
        # Not the greenlet calling (it ends, and would be kept): the hub's, which runs `wake`. The hub calls a
        # listener's throwback only while its greenlet lives: for a descriptor reused, which `wake` then meets.
        self.listener.greenlet = hub.greenlet

    def wake(self, _):
        """From the hub: read what has arrived in a greenlet of its own (nothing listens meanwhile)."""
        from eventlet import hubs, spawn_n

        hubs.get_hub().remove(self.listener)
        self.listener = None
        spawn_n(self.read_packets)

    def read_packets(self):
        """Take in the packets that have arrived, then park again; at the end of the connection, close it.

        As engine.io's handler's loop: a packet that does not parse is dropped, any other error ends the
        connection. Every READ_TURN packets it lets the other greenlets run: a client that wrote thousands of
        packets at once (a flood, answered `rate_limited` past its budget) held every other socket of the process
        until the last was read."""
        ws, read = self.websocket, 0
        while True:
            read += 1
            if read % READ_TURN == 0:
                self.server.sleep(0)
            try:
                p = self.next_packet()
            except Exception as e:
                # if the socket is already closed, we can assume this is a downstream error of that
                if not self.closed:
                    self.server.logger.info('%s: Unexpected error "%s", closing connection', self.sid, str(e))
                break
            if p is None:
                break  # connection closed by client
            try:
                pkt = packet.Packet(encoded_packet=p)
            except (ValueError, RecursionError) as error:  # no packet: a client's error, not the server's
                self.server.logger.info("%s: unreadable packet (%s), closing connection", self.sid, error)
                break
            try:
                self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                self.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                # if we get an unexpected exception we log the error and exit the connection properly
                self.server.logger.exception("Unknown receive error")
                break
            if not readable(ws.socket):
                self.park()
                return
        self.end()

    def end(self):
        """As engine.io's handler after its loop, then what the HTTP server did once its greenlet ended (before
        `detach`): shut the connection down, close the descriptor, give the connection's place back."""
        from eventlet.greenio import shutdown_safe  # imported only where eventlet serves

        try:
            self.queue.put(None)  # the writer closes the WebSocket after what is queued
            if self.writer is not None:
                self.writer.wait()  # started or not yet (engine.io's join returns at once for one not yet started)
            self.open_queue = False  # no cycle left through the queue
            if self._queue is not None:
                self._queue.on_put = None
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        finally:
            if self.closing_timer is not None:
                self.closing_timer.cancel()
            shutdown_safe(self.websocket.socket)
            self.websocket.socket.close()
            if self.server.connection_pool is not None:
                self.server.connection_pool.release()

    def give_up_after(self, seconds):
        """Shut the connection down if the client has neither taken what is queued, answered the closing frame nor
        closed its end within `seconds`: it would keep the descriptor, and its place in the server's pool, for as long
        as it liked."""
        from eventlet.hubs import get_hub  # imported only where eventlet serves

        self.closing_timer = get_hub().schedule_call_global(seconds, self.websocket.abort)

    def start_writer(self):
        """Start a writer for the queue unless one runs (it takes every packet queued before it ends): so a socket
        with no writer has nothing queued, which fanout relies on."""
        if self.writer is None and self._queue is not None and self._queue.queue:
            from eventlet import spawn  # imported only where eventlet serves

            self.writer = spawn(self.write_queue)

    def write_queue(self):
        """Write the queued packets, their frames joined into one write, until the queue is empty; then end.

        Between the last look at the queue and the end nothing yields, so a packet queued later
        starts the next writer. A packet taken from the queue is buffered in the same turn
        (fanout's order rests on it); a write that fails closes the WebSocket, as engine.io's
        writer did, and what is queued after that is dropped."""
        ws, queue, empty = self.websocket, self.queue, self.server.get_queue_empty_exception()
        try:
            while True:
                try:
                    pkt = queue.get(block=False)
                except empty:
                    if not ws.frames or ws.error is not None:
                        return
                    ws.flush()  # may wait for the kernel: the queue is looked at again after
                    if ws.error is not None:
                        ws.close()
                    continue
                queue.task_done()
                if ws.error is not None or ws.websocket_closed:
                    continue  # the connection is done: dropped
                if pkt is None:
                    ws.close()  # what is buffered first; `close` gave the client ping_timeout to answer
                else:
                    ws.buffer(pkt.encode())
        finally:
            self.writer = None
            if self.open_queue and queue is self._queue and not queue.queue:
                self._queue = None  # made again by the next put


def upgrade_packet(data):
    """An upgrade's packet, or None for a closed connection or what is not a packet (engine.io's handler raised, and
    eventlet then logged a traceback for each): the upgrade fails, as for an unexpected packet."""
    try:
        return packet.Packet(encoded_packet=data)
    except Exception:  # whatever a packet's decoding raises on bytes that are not one
        return None


class Pinger:
    """One greenlet sending every socket of a process its pings, each `ping_interval` after its last pong.

    The interval is the same for all, so the sockets fall due in the order they were scheduled: a
    deque, looked at from its head. It sleeps until the head is due (at most one interval: a socket
    scheduled meanwhile is due no sooner), and ends when no socket waits."""

    def __init__(self, eio):
        self.eio = eio
        self.due = deque()  # (monotonic time the ping is due, socket)
        self.task = None

    def schedule(self, socket):
        self.due.append((time.monotonic() + self.eio.ping_interval, socket))
        if self.task is None:
            self.task = self.eio.start_background_task(self.run)

    def run(self):
        try:
            while self.due:
                wait = self.due[0][0] - time.monotonic()
                if wait > 0:
                    self.eio.sleep(min(wait, self.eio.ping_interval))
                    continue
                _, socket = self.due.popleft()
                # As engine.io's _send_ping, after its sleep.
                if not socket.closing and not socket.closed:
                    socket.last_ping = time.time()
                    socket.send(packet.Packet(packet.PING))
        finally:
            self.task = None


# eventlet's HTTP server gives every connection a 16 KiB write buffer and an 8 KiB read buffer, kept for as long as
# the connection lives; an upgraded WebSocket uses neither (it reads and writes the socket itself).
HTTP_BUFFER = 4096


def http_protocol(environ):
    """The eventlet `HttpProtocol` serving a request: the environ's `eventlet.set_idle` is a closure over it."""
    set_idle = environ["eventlet.set_idle"]
    return set_idle.__closure__[set_idle.__code__.co_freevars.index("self")].cell_contents


def release_http_buffers(protocol):
    """Close the HTTP server's buffered reader and writer of an upgraded connection, which frees their buffers (the
    connection's protocol still holds the files). The WebSocket reads and writes the socket directly: nothing is
    left in the reader (a client sends no frame before the handshake's answer), nor in the writer (written out with
    the last response)."""
    protocol.rfile.close()
    protocol.wfile.close()


NO_BODY = io.BytesIO()  # the input of a detached connection's environ: an upgrade has no body
# What a detached connection's environ drops: eventlet's hold on the HTTP request, and the keys of the upgrade
# request that no event reads (the handshake's own headers, eventlet's raw copies of the path and the headers).
HANDSHAKE_ONLY = frozenset(
    {
        "eventlet.set_idle",
        "eventlet.posthooks",
        "eventlet.input",
        "headers_raw",
        "RAW_PATH_INFO",
        "GATEWAY_INTERFACE",
        "SERVER_PROTOCOL",
        "REMOTE_PORT",
        "HTTP_CONNECTION",
        "HTTP_UPGRADE",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS",
    }
)


class Detached:
    """What eventlet's HTTP server is left holding of a connection a WebSocket took: its shutdown and close do
    nothing."""

    def shutdown(self, *_):
        pass

    def close(self):
        pass


def detach(ws, protocol, pool):
    """Take an upgraded connection from eventlet's HTTP server, so that the greenlet serving it (its stack, its
    frames, the request's objects) can end while the connection lives on: the server's shutdown and close of it
    (the protocol's `finish`, the accept loop's clean-up) meet a `Detached`, and eventlet's closing frame after
    the handler returns is skipped (the socket sends it when it closes). The greenlet's place in the server's
    `pool` (when the server has one of `connection_pool`'s) stays taken until the connection closes.

    The environ stays (python-socketio hands it to each Socket.IO connect, which reads the token in its query, and
    engine.io reads it again once the WebSocket ends, for its CORS headers), without what would keep the HTTP
    request's objects alive (its protocol: headers, files, the server's own environ; its input) and what of the
    upgrade request is never read again (`HANDSHAKE_ONLY`); the strings left are
    shared with every other connection's equal ones (`sys.intern`). Idle, a connection kept 28 keys of it, about
    3 KiB."""
    environ = ws.environ
    protocol.connection = protocol.request = protocol.conn_state[1] = Detached()
    if pool is not None:
        from eventlet import getcurrent  # imported only where eventlet serves

        pool.keep(getcurrent())
    ws.skip_closing_frame()
    kept = {
        key: sys.intern(value) if type(value) is str else value
        for key, value in environ.items()
        if key not in HANDSHAKE_ONLY
    }
    environ.clear()  # and so its table, which a removal alone leaves as large
    environ.update(kept, **{"wsgi.input": NO_BODY})


def rfc6455_only(driver):
    """engine.io's eventlet driver table with a WebSocket server that answers the old draft protocol's handshake (no
    `Sec-WebSocket-Version`) with a plain 400, as eventlet does when told to: the frames, the fan-out and the lean
    sockets here serve RFC 6455 WebSockets (the old protocol's had no extensions, and failed after its 101)."""

    class WebSocketWSGI(driver["websocket"]):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.support_legacy_versions = False

    return {**driver, "websocket": WebSocketWSGI}


def connection_pool(size):
    """eventlet's pool of the HTTP server's greenlets (at most `size`), in which a connection `detach` took keeps its
    greenlet's place until it closes: `MAX_CONNECTIONS` still counts WebSockets, and the server's `waitall` at a
    drain still waits for them, as for the requests in flight (within SHUTDOWN_TIMEOUT)."""
    from eventlet import GreenPool  # imported only where eventlet serves

    class ConnectionPool(GreenPool):
        def __init__(self, size):
            super().__init__(size)
            self.kept = set()  # greenthreads whose place stays taken when they end
            self.held = 0  # places taken by connections whose greenthread has ended

        def keep(self, greenthread):
            """Leave `greenthread`'s place taken when it ends, until `release`."""
            self.kept.add(greenthread)

        def _spawn_done(self, coro):
            if coro in self.kept:
                self.kept.discard(coro)
                self.coroutines_running.discard(coro)
                self.held += 1
            else:
                super()._spawn_done(coro)

        def running(self):
            return super().running() + self.held

        def release(self):
            self.held -= 1
            super()._spawn_done(None)  # a place given back, as when a greenthread ends: the last wakes `waitall`

    return ConnectionPool(size)


def readable(sock):
    """Whether a read of the connection would not wait: bytes in the kernel (or its end), or in TLS's buffer."""
    pending = getattr(sock, "pending", None)
    if pending is not None:  # TLS: the kernel's bytes may not make a record yet; the hub wakes the reader for them
        return pending() > 0
    try:
        sock.fd.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        pass  # the reader meets the error
    return True


def install(server):
    """Make every engine.io socket of `server` lean as it connects, and HTTP buffers small (eventlet only)."""
    from eventlet.wsgi import HttpProtocol  # imported only where eventlet serves

    HttpProtocol.rbufsize = HttpProtocol.wbufsize = HTTP_BUFFER
    eio = server.eio
    eio.pinger = Pinger(eio)
    eio.connection_pool = None  # the HTTP server's, when it serves with one of connection_pool's
    lean_class = {}
    connect = eio.handlers["connect"]

    def adopt(sid, environ, *args):
        # engine.io made the socket just before this event, and schedules its first ping just after.
        socket = eio.sockets[sid]
        cls = type(socket)
        if cls not in lean_class:
            lean_class[cls] = type("LeanSocket", (LeanSocket, cls), {})
        socket.__class__ = lean_class[cls]
        socket._queue = socket.__dict__.pop("queue")  # the class's `queue` hands it out from now on
        return connect(sid, environ, *args)

    eio.on("connect", adopt)
