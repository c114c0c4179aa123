"""Socket.IO event table: each client event bound to its handler."""

from services import presence
from sockets import events
from utils import transport

HANDLERS = {
    "join": events.join,
    "message": events.message,
    "left": events.left,
    "typing": events.typing,
    "sync": events.sync,
    "react": events.react,
    "read": events.read,
}


def register_socket_handlers(app, socketio):
    """Bind connect, disconnect and every client event on the default namespace; nothing else is dispatched.

    Each runs in an app context and is given its socket's sid (connect also the handshake's environ): the request
    context Flask-SocketIO builds for each (a Request made from the handshake's environ, a session opened, every
    teardown run) cost ten times the app context, and nothing in them reads it."""
    transport.install(app, socketio.server, HANDLERS, presence.user_of)
    every = {"connect": events.connect, "disconnect": events.disconnect, **HANDLERS}
    for name, handler in every.items():
        socketio.server.on(name, _in_app_context(app, handler), namespace=transport.NAMESPACE)


def _in_app_context(app, handler):
    def run(sid, *args):
        with app.app_context():
            return handler(sid, *args)

    return run
