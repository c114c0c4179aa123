"""Messages: history, send, edit, delete."""

from flask import g, request

from middleware.auth import auth_required
from services import messages
from utils.http import json_body
from utils.schemas import load
from utils.schemas.messages import EditSchema, HistoryQuery, MessagePageSchema, MessageSchema, SendSchema


@auth_required
def history():
    query = load(HistoryQuery(), request.args.to_dict())
    room = query.pop("room")
    page, next_cursor = messages.history(g.user, room, **query)
    return MessagePageSchema().dump({"messages": page, "next_cursor": next_cursor})


@auth_required
def send():
    data = load(SendSchema(), json_body())
    message, created = messages.do_send_message(g.user, data["room"], data["message_body"], data["client_id"])
    return MessageSchema().dump(message), 201 if created else 200


@auth_required
def edit(message_id):
    data = load(EditSchema(), json_body())
    return MessageSchema().dump(messages.do_edit_message(g.user, message_id, data["message_body"]))


@auth_required
def delete(message_id):
    messages.do_delete_message(g.user, message_id)
    return "", 204
