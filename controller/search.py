"""Message search."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import search as searching
from utils.api import endpoint
from utils.schemas.messages import MessagePageSchema
from utils.schemas.search import SearchQuery


@auth_required
@per_user("read")
@endpoint(query=SearchQuery(), response=MessagePageSchema(), errors=(404, 429))
def search(query):
    """Messages holding every word of `q` (the last also as a word's start), newest first, in readable rooms."""
    page, next_cursor = searching.search(g.user, query["q"], query["room"], query["limit"], query["before"])
    return {"messages": page, "next_cursor": next_cursor}
