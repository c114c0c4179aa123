"""eventlet's WebSocket writes, one write per batch of frames.

engine.io wrote one WebSocket frame, and so made one `sendall`, per packet. Under load a
writer found several packets waiting (3.5 on average in the burst benchmark), and the system
calls were a third of the CPU. Here a socket's frames wait in a buffer and leave together
in one write: the writer (`sessions.LeanSocket.write_queue`) buffers every packet it finds
queued and writes them at once, and `fanout.DirectWriter` buffers room broadcasts in the
same list and writes them itself. Frames keep their order, and a failed write ends the
connection as a failed send did before.
"""

import contextlib
import socket

CLOSE = b"\x88"  # the first byte of a server's closing frame (FIN, opcode 8): nothing may follow it


class BatchedWebSocket:
    """An eventlet WebSocket whose frames can wait in a buffer (`buffer`) and leave together (`flush`); `send` and
    eventlet's own writes go out at once, after what is buffered."""

    def __init__(self, ws):
        self.ws = ws
        self.lock = ws._sendlock  # eventlet's: every write of the WebSocket holds it
        self.fd = None  # the kernel socket fanout sends on, once open to it
        self.frames = []
        self.error = None
        # Whether fanout.DirectWriter may buffer frames here itself: from `open_to_fanout` on, until the socket
        # closes (sessions.LeanSocket.close), its closing frame goes out (`_send`) or a write fails (`fail`).
        self.direct = False
        ws._send = self._send  # eventlet's own writes (a pong, the closing frame) hold the lock too: they drain

    def _send(self, frame):
        """eventlet's `_send`, for the frames it writes itself: what is buffered goes first, and what was
        buffered while it waited for the kernel goes after it, unless it closed the connection."""
        if frame[:1] == CLOSE:
            self.direct = False  # nothing may follow it
        lock = self.lock
        lock.acquire()
        try:
            self.write_buffered()
            self.ws.socket.sendall(frame)
            if frame[:1] != CLOSE:
                self.write_buffered()
        finally:
            lock.release()

    def __getattr__(self, name):
        return getattr(self.ws, name)

    def open_to_fanout(self):
        """Once the handshake is done: let fanout buffer frames here itself if the connection is open and it can
        write them with a send that never blocks (not compressed, not TLS, a non-blocking descriptor)."""
        from eventlet.greenio import GreenSocket  # imported only where eventlet serves

        raw, ws = self.ws.socket, self.ws
        self.direct = (
            self.error is None
            and not ws.websocket_closed
            and "permessage-deflate" not in ws.extensions
            and type(raw) is GreenSocket
            and raw.fd.gettimeout() == 0.0
        )
        if self.direct:
            self.fd = raw.fd

    def fail(self, error):
        """A write failed: the connection is done (no more direct writes; the next `send` raises `error`)."""
        self.error = error
        self.direct = False

    def buffer(self, message):
        """Add a message's frame to what the next write sends."""
        self.frames.append(self.ws._pack_message(message))

    def send(self, message):
        """Write a message now, after what is buffered; raise what made a write fail."""
        if self.error is not None:
            raise self.error
        self.buffer(message)
        self.flush()
        if self.error is not None:
            raise self.error

    def flush(self):
        """Write the buffered frames at once; a failure is kept in `error` (the connection is done)."""
        if not self.frames:
            return
        lock = self.lock
        lock.acquire()
        try:
            self.write_buffered()
        except Exception as error:  # whatever sendall raises, the connection is done
            self.fail(error)
        finally:
            lock.release()

    def write_buffered(self):
        """With the send lock held: write the buffered frames, and those buffered meanwhile, in order.

        Frames are taken only by the holder of the send lock, all at once, and every holder writes
        until none is left (eventlet's own writes too, through `_send`, but for its closing frame,
        which ends the connection): so they leave in the order they were buffered, by the writer
        or by `fanout.DirectWriter` (which buffers a broadcast's frame here too), and none is left
        behind when the lock is let go.
        """
        while self.frames:
            data = b"".join(self.frames)
            self.frames.clear()
            self.ws.socket.sendall(data)

    def close(self):
        """eventlet's close (the closing frame, then no more writes) after what is buffered, but the descriptor stays
        open: the reader sees the client's goodbye, and then closes it (`sessions.LeanSocket.end`)."""
        self.flush()
        self.ws._send_closing_frame(ignore_send_errors=True)
        with contextlib.suppress(OSError):  # already gone
            self.ws.socket.shutdown(socket.SHUT_WR)

    def skip_closing_frame(self):
        """Let eventlet's next `_send_closing_frame` do nothing: its WebSocket server's, after the handler returns,
        for a connection `sessions.detach` took."""

        def skip(*_, **__):
            del self.ws._send_closing_frame

        self.ws._send_closing_frame = skip

    def abort(self):
        """Shut the connection down both ways: a read or a write waiting on it wakes with an error."""
        with contextlib.suppress(OSError):  # already gone
            self.ws.socket.shutdown(socket.SHUT_RDWR)


class PacketQueue:
    """Mixed into engine.io's per-socket packet queue: `on_put`, when set, is called after each put."""

    on_put = None

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)
        if self.on_put is not None:
            self.on_put()


def batched_driver(driver):
    """engine.io's eventlet driver table with the packet queue that tells its socket of each put."""
    return {**driver, "queue": type("PacketQueue", (PacketQueue, driver["queue"]), {})}


def apply_mask(data, mask, length=None, offset=0):
    """XOR `length` bytes of `data` with the 4-byte WebSocket `mask`, starting `offset` bytes into it.

    eventlet unmasks every byte of every incoming frame in a Python generator: 0.3 s of CPU
    for a 900 kB frame, during which the whole process serves nobody. One big-integer XOR
    does the same work in C.
    """
    length = len(data) if length is None else length
    if not length:
        return b""
    shift = offset % 4
    mask = bytes(mask)
    key = (mask[shift:] + mask[:shift]) * (length // 4 + 1)
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(key[:length], "big")).to_bytes(length, "big")
