from controller import messages

RULES = [
    ("GET", "/messages", messages.history),
    ("POST", "/send", messages.send),
    ("PATCH", "/messages/<message_id>", messages.edit),
    ("DELETE", "/messages/<message_id>", messages.delete),
]
