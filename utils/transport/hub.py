"""What the client managers (`utils/transport/managers.py`) hand back to the services.

- Control messages: `transport.control(name, payload)` reaches the handler registered for
  `name` on every process (through the message queue when there is one), never a client.
- Reconnect hooks: called when the message queue comes back after a failure, when this
  process may have missed broadcasts and control messages.
- Delivered chat messages: a message can be broadcast twice (a retry broadcasts the
  original again, in case its first broadcast died with its process); each process keeps
  the ids it delivered recently and drops a second broadcast, so a socket gets it once.
"""

import logging
from collections import OrderedDict

CONTROL_PREFIX = "chat:"
# Stamped with a room's position that a failed send left to a tombstone, in order with the room's messages, so that
# the processes go on past it without asking the database (`ordering`); delivered to no socket.
SKIPPED = "position skipped"
RECENT_MESSAGES = 50_000

log = logging.getLogger("chat.transport")
_handlers = {}
_reconnect_hooks = []
_delivered = OrderedDict()


def on_control(name, handler):
    """Call `handler(payload)` for every control message `name`, on this process."""
    _handlers[CONTROL_PREFIX + name] = handler


def on_reconnect(hook):
    """Call `hook()` whenever the message queue comes back after a failure."""
    _reconnect_hooks.append(hook)


def reconnected():
    """Run the reconnect hooks (from the queue's listener)."""
    for hook in _reconnect_hooks:
        hook()


def accept(event, data):
    """Whether a manager should deliver this emit to sockets; control messages go to their handler."""
    if event.startswith(CONTROL_PREFIX):
        handler = _handlers.get(event)
        if handler is not None:
            try:
                handler(data)
            except Exception:  # one bad control message must not stop the queue's listener
                log.exception("control message %s failed", event)
        return False
    if event == SKIPPED:
        return False
    if event == "message" and isinstance(data, dict):
        return first_delivery(data.get("id"))
    return True


def first_delivery(message_id):
    """Whether a chat message is delivered here for the first time; it counts as delivered from now on."""
    if message_id in _delivered:
        return False
    _delivered[message_id] = None
    if len(_delivered) > RECENT_MESSAGES:
        _delivered.popitem(last=False)
    return True
