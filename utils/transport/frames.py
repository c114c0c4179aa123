"""eventlet's WebSocket writer, one write per batch of frames.

engine.io gives each socket a packet queue drained by a writer that sends one
WebSocket frame, and so one `sendall`, per packet. Under load a writer finds several packets
waiting (3.5 on average in the burst benchmark), and the system calls were a third of the
CPU. Here the writer's frames are joined and written once, when it goes back to its queue;
frames keep their order, and a failed write ends the writer as a failed send did before.
`fanout.DirectWriter` buffers room broadcasts in the same list and writes them itself.
"""

from greenlet import getcurrent

CLOSE = b"\x88"  # the first byte of a server's closing frame (FIN, opcode 8): nothing may follow it


class BatchedWebSocket:
    """An eventlet WebSocket whose writer's sends wait in a buffer until `flush()`; others go out at once (after
    what is buffered)."""

    def __init__(self, ws):
        self.ws = ws
        self.writer = None  # the greenlet that last waited on the packet queue
        self.frames = []
        self.error = None
        self.direct = None  # fanout.DirectWriter: whether it may write to this socket itself (None: not asked yet)
        ws._send = self._send  # eventlet's own writes (a pong, the closing frame) hold the lock too: they drain

    def _send(self, frame):
        """eventlet's `_send`, for the frames it writes itself: what is buffered goes first, and what was
        buffered while it waited for the kernel goes after it, unless it closed the connection."""
        lock = self.ws._sendlock
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

    def send(self, message):
        if self.error is not None:
            raise self.error
        self.frames.append(self.ws._pack_message(message))
        if getcurrent() is not self.writer:
            self.flush()  # after what was buffered before it
            if self.error is not None:
                raise self.error
        return None

    def flush(self):
        """Write the buffered frames at once; a failure is raised by the writer's next send."""
        if not self.frames:
            return
        lock = self.ws._sendlock
        lock.acquire()
        try:
            self.write_buffered()
        except Exception as error:  # whatever sendall raises, the connection is done
            self.error = error
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
        self.flush()
        self.ws.close()


class PacketQueue:
    """Mixed into engine.io's per-socket packet queue: a blocking get means the writer sent its batch."""

    socket = None

    def get(self, block=True, timeout=None):
        if not block or self.socket is None:
            return super().get(block, timeout)
        self.socket.flush()
        item = super().get(block, timeout)
        self.socket.writer = getcurrent()
        return item


class BatchedWebSocketWSGI:
    """Mixed into engine.io's WebSocket endpoint: its socket handler gets a BatchedWebSocket."""

    def __init__(self, handler, server):
        queue = handler.__self__.queue  # handler: the engine.io socket's bound _websocket_handler

        def batched(ws):
            queue.socket = BatchedWebSocket(ws)
            return handler(queue.socket)

        super().__init__(batched, server)


def batched_driver(driver):
    """engine.io's eventlet driver table with the batching queue and WebSocket endpoint mixed in."""
    return {
        **driver,
        "queue": type("PacketQueue", (PacketQueue, driver["queue"]), {}),
        "websocket": type("BatchedWebSocketWSGI", (BatchedWebSocketWSGI, driver["websocket"]), {}),
    }


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
