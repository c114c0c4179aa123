"""Reactions: add and remove the caller's emoji on a message."""

from flask import g

from middleware.auth import auth_required
from services import reactions
from utils.api import endpoint
from utils.schemas import load
from utils.schemas.messages import MessageSchema
from utils.schemas.reactions import EmojiPath


@auth_required
@endpoint(response=MessageSchema(), errors=(400, 403, 404, 429))
def add(message_id, emoji):
    """Add the caller's reaction (URL-encoded emoji); broadcasts `message_updated` when it was not there."""
    return reactions.do_react(g.user, message_id, _emoji(emoji), add=True)


@auth_required
@endpoint(response=MessageSchema(), errors=(400, 403, 404, 429))
def remove(message_id, emoji):
    """Remove the caller's reaction; broadcasts `message_updated` when it was there."""
    return reactions.do_react(g.user, message_id, _emoji(emoji), add=False)


def _emoji(value):
    return load(EmojiPath(), {"emoji": value})["emoji"]
