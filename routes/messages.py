"""Messages: history pages with cursors (live or archived), send (idempotent by clientId), edit, delete, readers."""

from controller import messages, read_state

RULES = [
    ("GET", "/messages", messages.history),
    ("POST", "/send", messages.send),
    ("PATCH", "/messages/<message_id>", messages.edit),
    ("DELETE", "/messages/<message_id>", messages.delete),
    ("GET", "/messages/<message_id>/readers", read_state.readers),
]
