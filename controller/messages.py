"""Messages: history, send, edit, delete."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import messages
from utils.api import endpoint
from utils.schemas.messages import EditSchema, HistoryQuery, MessagePageSchema, MessageSchema, SendSchema


@auth_required
@per_user("read")
@endpoint(query=HistoryQuery(), response=MessagePageSchema(), errors=(404, 429))
def history(query):
    """A page of a room's history (default `general`); `archived=true` reads the archive."""
    room = query.pop("room")
    page, next_cursor = messages.history(g.user, room, **query)
    return {"messages": page, "next_cursor": next_cursor}


@auth_required
@endpoint(body=SendSchema(), response=MessageSchema(), status=201, also=(200,), errors=(403, 404, 429))
def send(body):
    """Store a message and broadcast it; a repeated clientId returns the original (200)."""
    message, created = messages.send(
        g.user, body["room"], body["message_body"], body["client_id"], body["reply_to"], body["attachments"]
    )
    return message, 201 if created else 200


@auth_required
@per_user("edit")
@endpoint(body=EditSchema(), response=MessageSchema(), errors=(403, 404, 429))
def edit(message_id, body):
    """Change a message's body (its author only); broadcasts `message_updated`."""
    return messages.do_edit_message(g.user, message_id, body["message_body"])


@auth_required
@per_user("edit")
@endpoint(status=204, errors=(403, 404, 429))
def delete(message_id):
    """Soft-delete a message; broadcasts `message_deleted`."""
    messages.do_delete_message(g.user, message_id)
