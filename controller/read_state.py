"""Read state: move the caller's read marker, list who read a message."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import read_state
from utils.api import endpoint
from utils.schemas.read_state import MarkReadSchema, ReaderListSchema, ReadStateSchema


@auth_required
@endpoint(body=MarkReadSchema(), response=ReadStateSchema(), errors=(403, 404, 429))
def mark_read(room_id, body):
    """Move the caller's read marker forward to a message of the room; answers their unread and mention counts."""
    return read_state.do_mark_read(g.user, room_id, body["message_id"])


@auth_required
@per_user("read")
@endpoint(response=ReaderListSchema(), errors=(404, 429))
def readers(message_id):
    """The members other than its author who have read a message (their marker is at or after it)."""
    return {"readers": read_state.readers(g.user, message_id)}
