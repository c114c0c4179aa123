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
    """Bind connect, disconnect and every client event on the default namespace; nothing else is dispatched."""
    transport.install(app, socketio.server, HANDLERS, presence.user_of)
    socketio.on_event("connect", events.connect)
    socketio.on_event("disconnect", events.disconnect)
    for name, handler in HANDLERS.items():
        socketio.on_event(name, handler)
