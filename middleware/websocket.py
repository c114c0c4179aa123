"""WebSocket transport tuning: no compression, and (eventlet) one write per batch of frames.

Compression is off by default, as in Socket.IO's Node server. Browsers and Node clients
offer permessage-deflate, and eventlet accepts it: every frame of a room broadcast is then
compressed once per recipient, which took about a third of the server's CPU in the fan-out
benchmark, for small JSON chat frames that barely shrink.
"""

from middleware.frame_batching import batched_driver


class DeclineCompression:
    """Drop the client's Sec-WebSocket-Extensions offer so the handshake settles on no compression."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return self.app(environ, start_response)


def register_websocket_options(app, socketio):
    """Decline permessage-deflate unless WEBSOCKET_COMPRESSION is on; batch frames under eventlet."""
    if not app.config["WEBSOCKET_COMPRESSION"]:
        app.wsgi_app = DeclineCompression(app.wsgi_app)
    eio = socketio.server.eio
    if eio.async_mode == "eventlet":
        eio._async = batched_driver(eio._async)
