"""Mentions: the caller's feed."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import mentions
from utils.api import endpoint
from utils.schemas.mentions import MentionsQuery
from utils.schemas.messages import MessagePageSchema


@auth_required
@per_user("read")
@endpoint(query=MentionsQuery(), response=MessagePageSchema(), errors=(429,))
def feed(query):
    """Messages naming the caller in rooms they may still read, or `@room`/`@here` in their rooms, newest first."""
    page, next_cursor = mentions.feed(g.user, query["limit"], query["before"])
    return {"messages": page, "next_cursor": next_cursor}
