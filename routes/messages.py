"""Messages: history pages with cursors (live or archived), send (idempotent by clientId), edit, delete."""

from controller import messages

RULES = [
    ("GET", "/messages", messages.history),
    ("POST", "/send", messages.send),
    ("PATCH", "/messages/<message_id>", messages.edit),
    ("DELETE", "/messages/<message_id>", messages.delete),
]
