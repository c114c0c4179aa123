"""WebSocket transport tuning: no compression, and one write per batch of frames.

Compression is off by default, as in Socket.IO's Node server. Browsers and Node clients
offer permessage-deflate, and eventlet accepts it: every frame of a room broadcast is then
compressed once per recipient, which took about a third of the server's CPU in the fan-out
benchmark, for small JSON chat frames that barely shrink.

Batching: engine.io gives each socket a packet queue drained by a writer that sends one
WebSocket frame, and so one `sendall`, per packet. Under load a writer finds several packets
waiting (3.5 on average in the burst benchmark), and the system calls were a third of the
CPU. Here the writer's frames are joined and written once, when it goes back to its queue;
frames keep their order, and a failed write ends the writer as a failed send did before.
"""

import eventlet.queue
from engineio.async_drivers.eventlet import WebSocketWSGI
from greenlet import getcurrent


class DeclineCompression:
    """Drop the client's Sec-WebSocket-Extensions offer so the handshake settles on no compression."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return self.app(environ, start_response)


class BatchedWebSocket:
    """An eventlet WebSocket whose writer's sends wait in a buffer until `flush()`; others go out at once."""

    def __init__(self, ws):
        self.ws = ws
        self.writer = None  # the greenlet that last waited on the packet queue
        self.frames = []
        self.error = None

    def __getattr__(self, name):
        return getattr(self.ws, name)

    def send(self, message):
        if self.error is not None:
            raise self.error
        if getcurrent() is not self.writer:
            return self.ws.send(message)
        self.frames.append(self.ws._pack_message(message))
        return None

    def flush(self):
        """Write the buffered frames at once; a failure is raised by the writer's next send."""
        if not self.frames:
            return
        data = b"".join(self.frames)
        self.frames.clear()
        try:
            self.ws._send(data)
        except Exception as error:  # whatever sendall raises, the connection is done
            self.error = error

    def close(self):
        self.flush()
        self.ws.close()


class PacketQueue(eventlet.queue.Queue):
    """engine.io's per-socket packet queue: a blocking get means the writer sent its batch."""

    socket = None

    def get(self, block=True, timeout=None):
        if not block or self.socket is None:
            return super().get(block, timeout)
        self.socket.flush()
        item = super().get(block, timeout)
        self.socket.writer = getcurrent()
        return item


class BatchedWebSocketWSGI(WebSocketWSGI):
    """engine.io's eventlet WebSocket endpoint, handing its socket handler a BatchedWebSocket."""

    def __init__(self, handler, server):
        queue = handler.__self__.queue  # handler: the engine.io socket's bound _websocket_handler

        def batched(ws):
            queue.socket = BatchedWebSocket(ws)
            return handler(queue.socket)

        super().__init__(batched, server)


def register_websocket_options(app, socketio):
    """Decline permessage-deflate unless WEBSOCKET_COMPRESSION is on; batch frames under eventlet."""
    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = DeclineCompression(app.wsgi_app)
    eio = socketio.server.eio
    if eio.async_mode == "eventlet":
        eio._async = {**eio._async, "queue": PacketQueue, "websocket": BatchedWebSocketWSGI}
