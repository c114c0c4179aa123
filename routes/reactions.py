"""Reactions: add and remove the caller's emoji on a message (URL-encoded in the path)."""

from controller import reactions

RULES = [
    ("PUT", "/messages/<message_id>/reactions/<emoji>", reactions.add),
    ("DELETE", "/messages/<message_id>/reactions/<emoji>", reactions.remove),
]
