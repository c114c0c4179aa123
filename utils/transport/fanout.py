"""Room broadcasts under eventlet: the frame built once, written straight to each idle WebSocket.

python-socketio encodes a broadcast's packet once and hands it to every recipient's engine.io
socket; each recipient then costs a queue put, a wake-up of that socket's writer greenlet, the
WebSocket frame built again, a locked `sendall` and a switch back. Here the frame is built once
per broadcast, and a recipient whose WebSocket is idle gets it with one non-blocking `send` of
the shared bytes, from the emitting greenlet. Any other recipient (long-polling, upgrading,
something queued or being written, TLS, compression, a kernel buffer that takes nothing) gets
the packet through engine.io's queue exactly as before.

Order. A socket's frames leave in the order they were handed to it, because a direct write is
made only when everything handed to that socket before is already in the kernel's buffer:
- its engine.io queue is empty: the writer greenlet takes packets only from there, and it is
  woken by a switch, so it runs to its next wait with what it took: it never holds a packet
  unseen, the packet is in `frames` (below) or in a write under way;
- its `frames.BatchedWebSocket` holds no frames waiting for the writer's flush;
- its send lock is free and nobody waits for it: a write under way (the writer's flush, a
  previous direct write's rest) holds it until its last byte is out; a lock just released to a
  waiting writer is not free until that writer has written.
The direct write takes the lock. If the kernel takes the whole frame, the lock is released at
once. If it takes part, the lock stays taken by a greenlet that writes the rest, so every later
frame waits behind it: a later broadcast finds the lock taken and queues, and the writer's
flush takes the lock first. If it takes nothing, the lock is released and the packet queued.
Nothing yields between the checks and the write. `check_internals` (in `__init__`) refuses to
start when a name this relies on has moved.
"""

import logging

from engineio import packet as eio_packet
from socketio import Manager
from socketio import packet as sio_packet

log = logging.getLogger("chat.transport")
PARTIAL = "partial"  # truthy: written, the rest by a greenlet holding the send lock


class FanoutManager(Manager):
    """python-socketio's manager whose room broadcasts go through a `DirectWriter` under eventlet (`install`)."""

    fanout = None  # the DirectWriter, set by install() where eventlet serves

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        if self.fanout is None or callback is not None or namespace not in self.rooms:
            return super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)
        # As Manager.emit without a callback: one packet for every recipient.
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        if not isinstance(encoded, str):  # binary attachments: several packets, engine.io's way
            return super().emit(event, data, namespace, room, skip_sid, callback, to, **kwargs)
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, to or room) if sid not in skip]
        self.fanout.broadcast(eio_packet.Packet(eio_packet.MESSAGE, encoded), recipients)
        return None


def install(server):
    """Send the manager's room broadcasts through a DirectWriter (eventlet only: it writes on eventlet's sockets)."""
    if isinstance(server.manager, FanoutManager):
        server.manager.fanout = DirectWriter(server)


class DirectWriter:
    """Writes a broadcast's frame straight to each idle WebSocket; queues it for the others."""

    def __init__(self, server):
        from eventlet.greenio import GreenSocket  # imported only where eventlet serves

        self.server = server
        self.plain_socket = GreenSocket

    def broadcast(self, pkt, recipients):
        """Send engine.io packet `pkt` to each engine.io session of `recipients`, directly where it is idle."""
        sockets = self.server.eio.sockets
        frame = None
        direct = partial = 0
        for eio_sid in recipients:
            socket = sockets.get(eio_sid)
            batched = self.idle_websocket(socket)
            if batched is not None and not socket.check_ping_timeout():
                continue  # closed for not answering pings, as engine.io's send does
            if batched is not None:
                if frame is None:
                    frame = batched.ws._pack_message(pkt.encode())
                written = self.direct_write(batched, frame)
                if written:
                    direct += 1
                    partial += written is PARTIAL
                    continue
            self.server._send_eio_packet(eio_sid, pkt)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "broadcast to %d sockets: %d written directly (%d in part), %d queued",
                len(recipients), direct, partial, len(recipients) - direct,
            )  # fmt: skip

    def idle_websocket(self, socket):
        """The socket's BatchedWebSocket if a direct write may go out now without overtaking anything, else None."""
        if socket is None or socket.closed or socket.closing or not socket.upgraded or socket.upgrading:
            return None
        queue = socket.queue
        batched = getattr(queue, "socket", None)  # set by frames.BatchedWebSocketWSGI
        if queue.queue or batched is None or batched.frames or batched.error is not None:
            return None
        ws = batched.ws
        lock = ws._sendlock
        if lock.counter <= 0 or lock._waiters or ws.websocket_closed or "permessage-deflate" in ws.extensions:
            return None
        raw = ws.socket
        if type(raw) is not self.plain_socket or raw.fd.gettimeout() != 0.0:  # TLS, or a descriptor that could block
            return None
        return batched

    def direct_write(self, batched, frame):
        """Write `frame` now, or the part the kernel takes and the rest from a greenlet holding the send lock.

        True when the kernel took it all, PARTIAL when the rest is being written, False when nothing was
        written: the caller queues the packet.
        """
        ws = batched.ws
        lock = ws._sendlock
        if not lock.acquire(blocking=False):
            return False
        try:
            sent = ws.socket.fd.send(frame)
        except OSError:  # the kernel buffer is full (EAGAIN), or the connection is failing: the queue decides
            sent = 0
        if sent == len(frame):
            lock.release()
            return True
        if not sent:
            lock.release()
            return False
        self.server.start_background_task(write_rest, batched, memoryview(frame)[sent:])
        return PARTIAL


def write_rest(batched, rest):
    """Write what the kernel did not take, then let the next write go; a failure ends the writer."""
    ws = batched.ws
    try:
        ws.socket.sendall(rest)
    except OSError as error:  # a timeout too: the reader stopped for longer than pings allow
        batched.error = error
    finally:
        ws._sendlock.release()
