"""Room broadcasts under eventlet: the frame built once, written straight to the WebSockets.

python-socketio encodes a broadcast's packet once and hands it to every recipient's engine.io
socket; each recipient then costs a queue put, a wake-up of that socket's writer greenlet, the
WebSocket frame built again, a locked `sendall` and a switch back. Here the frame is built once
per broadcast and buffered, as the same bytes, for every recipient whose WebSocket may take it
now; on the hub's next turn one greenlet writes each of those sockets' buffered frames with one
non-blocking `send`. Broadcasts made in the same turn (a burst) leave together, one write per
socket; a lone broadcast leaves at once. Any other recipient (long-polling, upgrading,
something in its queue, TLS, compression, a failed connection) gets the packet through
engine.io's queue exactly as before.

Order. The buffer is the writer's own (`frames.BatchedWebSocket.frames`), and:
- frames are taken from it all at once, by the holder of the socket's send lock, which writes
  until it is empty before letting go (`write_buffered`), or by `write_all` while the lock is
  free and promised to no one, which sends them before anything yields; a write the kernel
  takes only part of is finished by a greenlet holding the lock. So bytes leave in the order
  frames were buffered.
- the writer (`sessions.LeanSocket.write_queue`) buffers a packet in the same turn it takes it
  from the queue, and a broadcast buffers directly only into a socket with no writer, whose
  queue is then empty (once the WebSocket is open every put starts a writer if none runs, and a
  writer ends, without yielding, only once it found the queue empty): everything handed to the
  socket before is buffered before it.
So each socket gets its packets in the order they were handed to it. `write_all` skips a socket
whose lock is held or promised to a waiting greenlet: that greenlet writes the frames. The
lines of engine.io and eventlet this rests on are checked at start-up (`check_internals`).
"""

import logging
import time

from engineio import packet as eio_packet
from socketio import Manager
from socketio import packet as sio_packet

log = logging.getLogger("chat.transport")


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


class DirectAcks:
    """Mixed into python-socketio's Server: where a DirectWriter serves, an ack (the answer to a client's event) goes
    to its socket as a broadcast to that socket alone, so it leaves with the turn's broadcasts in one write (the
    sender's own message among them) instead of waking a writer greenlet of its own."""

    def _send_packet(self, eio_sid, pkt):
        fanout = self.manager.fanout
        if fanout is not None and pkt.packet_type == sio_packet.ACK:
            encoded = pkt.encode()
            if isinstance(encoded, str):  # else binary attachments: several packets, engine.io's way
                return fanout.broadcast(eio_packet.Packet(eio_packet.MESSAGE, encoded), [eio_sid])
        return super()._send_packet(eio_sid, pkt)


def install(server):
    """Send the manager's room broadcasts through a DirectWriter (eventlet only: it writes on eventlet's sockets)."""
    if isinstance(server.manager, FanoutManager):
        server.manager.fanout = DirectWriter(server)


class DirectWriter:
    """Buffers a broadcast's frame for each WebSocket that may take it now; writes them on the hub's next turn."""

    def __init__(self, server):
        self.server = server
        # BatchedWebSockets with frames buffered since the last write_all, once for each broadcast that buffered
        # there (the first visit writes them all: cheaper than a set)
        self.buffered = []
        self.scheduled = False

    def broadcast(self, pkt, recipients):
        """Send engine.io packet `pkt` to each engine.io session of `recipients`: buffered where the socket's
        WebSocket is open to direct writes and no writer runs, so nothing is queued (written by `write_all`);
        through the queue elsewhere."""
        sockets = self.server.eio.sockets
        send_queued = self.server._send_eio_packet
        ping_timeout = self.server.eio.ping_timeout
        now = time.time()
        frame = None
        buffered = self.buffered
        count = 0
        for eio_sid in recipients:
            socket = sockets.get(eio_sid)
            # The WebSocket's `direct` (frames.BatchedWebSocket) stands for every state that rules a direct write out
            # for good: not yet upgraded, closing or closed, its closing frame sent, a failed write, TLS, compression.
            batched = getattr(socket, "websocket", None)  # set by sessions.LeanSocket's WebSocket handler
            # A socket with no writer has an empty queue (sessions.LeanSocket.start_writer): one with a writer may not.
            if batched is None or not batched.direct or socket.writer is not None:
                send_queued(eio_sid, pkt)  # a frame buffered now could overtake what is queued
                continue
            last_ping = socket.last_ping  # engine.io's send checks the ping timeout: only the late call it
            if last_ping and now - last_ping > ping_timeout and not socket.check_ping_timeout():
                continue  # closed for not answering pings, as engine.io's send does
            if frame is None:
                frame = batched.ws._pack_message(pkt.encode())
            batched.frames.append(frame)
            buffered.append(batched)
            count += 1
        if count and not self.scheduled:
            self.scheduled = True
            self.server.start_background_task(self.write_all)
        if log.isEnabledFor(logging.DEBUG):
            queued = len(recipients) - count
            log.debug("broadcast to %d sockets: %d buffered, %d queued", len(recipients), count, queued)

    def write_all(self):
        """Write each socket's buffered frames with one non-blocking send; what the kernel does not take, a
        greenlet holding the send lock writes. A socket whose lock is taken, or promised to a waiting greenlet,
        is left to that greenlet: it writes every buffered frame before it lets go (`write_buffered`).

        A whole send takes no lock: nothing yields between the look at the lock and the send."""
        self.scheduled = False
        buffered, self.buffered = self.buffered, []
        written = partial = 0
        for batched in buffered:
            frames, lock = batched.frames, batched.lock
            if not frames or batched.error is not None or lock.counter <= 0 or lock._waiters:
                continue
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            frames.clear()
            try:
                sent = batched.fd.send(data)
            except OSError:  # the kernel buffer is full (EAGAIN), or the connection failed: sendall will tell
                sent = 0
            written += 1
            if sent == len(data):
                continue
            partial += 1
            lock.acquire(blocking=False)  # free, nobody waiting: taken at once, and held until the rest is out
            self.server.start_background_task(write_rest, batched, memoryview(data)[sent:])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("wrote %d sockets' frames: %d in part", written, partial)


def write_rest(batched, rest):
    """With the send lock held: write what the kernel did not take and what was buffered meanwhile, then let go."""
    try:
        batched.ws.socket.sendall(rest)
        batched.write_buffered()
    except OSError as error:  # a client that stopped reading is shut down when its pong is late (sessions)
        batched.fail(error)  # the connection is done: broadcasts skip it, its reader wakes and closes it
        batched.abort()
    finally:
        batched.lock.release()
