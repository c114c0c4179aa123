"""Socket.IO handlers; each docstring is the client contract of its event."""

from flask import request
from socketio.exceptions import ConnectionRefusedError

from services import live, messages, notify, presence, tokens
from sockets.acks import socket_event
from utils.errors import AppError
from utils.schemas.events import OnlineUserSchema, RoomEvent, SyncEvent, TypingEvent
from utils.schemas.messages import SendSchema

_online = OnlineUserSchema(many=True)


def connect(auth=None):
    """Connect with `auth: {token}` (or `?token=`); a bad token gets `connect_error` with the error object as data."""
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        user, claims = tokens.authenticate(token or request.args.get("token"))
    except AppError as error:
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    presence.register(request.sid, user, claims)


def disconnect(reason=None):
    """The rooms this socket was its user's last one in get `user_left`."""
    live.do_disconnect(request.sid)


@socket_event(RoomEvent())
def join(user, data):
    """`join {room}` -> `{ok, room, members: [{userId, userName}]}`; the room gets `user_joined` and `presence`."""
    room_id, online = live.do_socket_join(request.sid, user, data["room"])
    members = [{"user_id": user_id, "user_name": name} for user_id, name in online.items()]
    return {"room": room_id, "members": _online.dump(members)}


@socket_event(SendSchema())
def message(user, data):
    """`message {room, messageBody, clientId?}` -> `{ok, message}` once stored; the room gets `message`."""
    stored, _ = messages.do_send_message(user, data["room"], data["message_body"], data["client_id"], request.sid)
    return {"message": notify.message_payload(stored)}


@socket_event(RoomEvent())
def left(user, data):
    """`left {room}` -> `{ok}`; this socket stops receiving the room; `user_left` follows the user's last socket."""
    return {"room": live.do_socket_leave(request.sid, user, data["room"])}


@socket_event(TypingEvent())
def typing(user, data):
    """`typing {room, typing}` -> `{ok}`; the rest of the room gets `typing {room, userId, userName, typing}`."""
    live.do_typing(request.sid, user, data["room"], data["typing"])
    return {}


@socket_event(SyncEvent())
def sync(user, data):
    """`sync {room, after, limit?}` -> `{ok, messages, nextCursor}`: what came after `after`, oldest first."""
    page, next_cursor = messages.history(user, data["room"], data["limit"], after=data["after"])
    return {"messages": [notify.message_payload(m) for m in page], "nextCursor": next_cursor}
