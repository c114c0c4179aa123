"""engine.io sessions under eventlet with no greenlet and no timer of their own while idle.

engine.io gives every connection, besides the greenlet that reads it, a writer greenlet
blocked on its packet queue with a timeout, a greenlet sleeping until its next ping, and a
timeout on every read: three greenlets and three timers for a connection that says nothing.
Each greenlet keeps a Python frame stack of its own (at least a page), a copy of its part
of the C stack and its objects; with 5000 idle connections that was most of the memory
per connection. Here (`LeanSocket`, mixed into each engine.io socket as it connects):

- the reading greenlet is the only one an idle connection has; its reads wait with no
  timeout (no timer);
- a packet queued for an open WebSocket starts a writer greenlet that writes what is queued
  and ends as soon as the queue is empty (`write_queue`); a room broadcast usually needs
  none (`fanout.DirectWriter` writes it straight to the socket);
- one `Pinger` per process sends every socket its pings, in the order they fall due, from
  one greenlet with one timer (engine.io's own `_service_task`, one per process, still
  closes a socket whose pong is late);
- a socket closed because its client stopped answering pings is shut down at once, which
  ends a read or a write blocked on a client that stopped reading (the timeout of every
  read and write did that before);
- eventlet's HTTP server keeps a 16 KiB write buffer and an 8 KiB read buffer for every
  connection's lifetime: 4 KiB each (`HTTP_BUFFER`), and a WebSocket, which reads and writes
  its socket itself once the handshake is done, lets both go (`release_http_buffers`).

`_websocket_handler` replaces engine.io's; it does what engine.io's does, but for the writer
greenlet and the timeout. `check_internals` refuses to start when engine.io's version of a
replaced method is no longer the one this was written against (`REPLACED`).
"""

import inspect
import logging
import time
from collections import deque

from engineio import exceptions, packet

from utils.transport.frames import BatchedWebSocket

log = logging.getLogger("chat.transport")


class LeanSocket:
    """Mixed into each engine.io socket by `adopt`: the writer greenlet exists only while packets wait, pings come
    from the process's `Pinger`."""

    websocket = None  # the BatchedWebSocket, once the WebSocket handshake is done (fanout writes to it too)
    writer = None  # the greenlet writing the queue, while it has packets

    def schedule_ping(self):
        # As engine.io's: only once the previous ping has been answered (a pong clears last_ping).
        if self.last_ping:
            self.last_ping = None
            self.server.pinger.schedule(self)

    def close(self, wait=True, abort=False, reason=None):
        super().close(wait, abort, reason)
        if reason == self.server.reason.PING_TIMEOUT and self.websocket is not None:
            log.debug("%s: pong late, connection shut down (writing: %s)", self.sid, self.writer is not None)
            self.websocket.abort()  # a read or a write may be waiting on a client that no longer reads

    def _websocket_handler(self, ws):
        """engine.io's handler for the WebSocket transport, but no writer greenlet and no read timeout."""
        release_http_buffers(ws.environ)
        ws = self.websocket = BatchedWebSocket(ws)
        ws.socket.settimeout(None)  # an idle read keeps no timer: pings tell a gone client (close, above)

        def websocket_wait():
            data = ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        if self.connected:
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade

            pkt = websocket_wait()
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return []
            ws.send(packet.Packet(packet.PONG, data="probe").encode())
            self.queue.put(packet.Packet(packet.NOOP))  # end poll

            pkt = websocket_wait()
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.UPGRADE:
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
        self.queue.on_put = self.start_writer
        self.start_writer()
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)

        while True:
            p = None
            try:
                p = websocket_wait()
            except Exception as e:
                # if the socket is already closed, we can assume this is a downstream error of that
                if not self.closed:
                    self.server.logger.info('%s: Unexpected error "%s", closing connection', self.sid, str(e))
                break
            if p is None:
                # connection closed by client
                break
            pkt = packet.Packet(encoded_packet=p)
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

        self.queue.put(None)  # the writer closes the WebSocket after what is queued
        if self.writer is not None:
            self.writer.join()
        self.queue.on_put = None  # no cycle left through the queue
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def start_writer(self):
        """Start a writer for the queue unless one runs (it takes every packet queued before it ends)."""
        if self.writer is None and self.queue.queue:
            self.writer = self.server.start_background_task(self.write_queue)

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
                    ws.close()  # what is buffered first
                else:
                    ws.buffer(pkt.encode())
        finally:
            self.writer = None


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


def release_http_buffers(environ):
    """Close the HTTP server's buffered reader and writer of an upgraded connection, which frees their buffers (the
    frames of the server's greenlet still hold the files). The WebSocket reads and writes the socket directly:
    nothing is left in the reader (a client sends no frame before the handshake's answer), nor in the writer
    (written out with the last response). With the files closed, nothing but the HTTP server, once the connection's
    greenlet ends, closes the descriptor: `BatchedWebSocket.close` leaves it open.

    The files are the connection's `HttpProtocol`'s; the environ's `eventlet.set_idle` is a closure over it."""
    protocol = inspect.getclosurevars(environ["eventlet.set_idle"]).nonlocals["self"]
    protocol.rfile.close()
    protocol.wfile.close()


def install(server):
    """Make every engine.io socket of `server` lean as it connects, and HTTP buffers small (eventlet only)."""
    from eventlet.wsgi import HttpProtocol  # imported only where eventlet serves

    HttpProtocol.rbufsize = HttpProtocol.wbufsize = HTTP_BUFFER
    eio = server.eio
    eio.pinger = Pinger(eio)
    lean_class = {}
    connect = eio.handlers["connect"]

    def adopt(sid, environ, *args):
        # engine.io made the socket just before this event, and schedules its first ping just after.
        socket = eio.sockets[sid]
        cls = type(socket)
        if cls not in lean_class:
            lean_class[cls] = type("LeanSocket", (LeanSocket, cls), {})
        socket.__class__ = lean_class[cls]
        return connect(sid, environ, *args)

    eio.on("connect", adopt)
