"""Socket.IO event table: each client event bound to its handler."""

from sockets import events

HANDLERS = {
    "join": events.join,
    "message": events.message,
    "left": events.left,
    "typing": events.typing,
    "sync": events.sync,
}


def register_socket_handlers(socketio):
    """Bind connect, disconnect and every client event on the default namespace."""
    socketio.on_event("connect", events.connect)
    socketio.on_event("disconnect", events.disconnect)
    for name, handler in HANDLERS.items():
        socketio.on_event(name, handler)
