"""Socket.IO handlers; each docstring is the client contract of its event."""

from urllib.parse import parse_qsl

from flask import current_app
from socketio.exceptions import ConnectionRefusedError

from services import live, presence, reactions, read_state, tokens
from sockets.acks import log, socket_event
from utils import metrics
from utils.errors import AppError, InternalError, RateLimited
from utils.outage import log_failure
from utils.schemas.events import JoinAckSchema, RoomAckSchema, RoomEvent, SyncEvent, TypingEvent
from utils.schemas.messages import MessageAckSchema, MessagePageSchema, SendSchema
from utils.schemas.reactions import ReactEvent
from utils.schemas.read_state import ReadEvent, ReadStateSchema

_join_ack, _room_ack, _message_ack, _page = JoinAckSchema(), RoomAckSchema(), MessageAckSchema(), MessagePageSchema()
_read_ack = ReadStateSchema()


def connect(sid, environ, auth=None):
    """Connect with `auth: {token}` (or `?token=`); a bad token gets `connect_error` with the error object as data."""
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        user, claims = tokens.authenticate_socket(token or _query_token(environ))
        if len(presence.sids_of(str(user.id))) >= current_app.config["MAX_SOCKETS_PER_USER"]:
            metrics.refused("connect")
            raise RateLimited(60, "too many connections for this user")
    except AppError as error:
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    except Exception:  # the database out of reach, say: refused in the contract's shape, not dropped
        log_failure(log, "socket connect failed")
        error = InternalError()
        raise ConnectionRefusedError(error.message, error.to_dict()) from None
    live.connect(sid, user, claims)


def _query_token(environ):
    """The handshake's first `token` query parameter, as Flask's `request.args` would read it."""
    return next((value for key, value in parse_qsl(environ.get("QUERY_STRING", ""), True) if key == "token"), None)


def disconnect(sid, reason=None):
    """The rooms this socket was its user's last one in get `user_left`."""
    live.disconnect(sid)


@socket_event(RoomEvent())
def join(sid, user, data):
    """`join {room}` -> `{ok, room, members: [{userId, userName}]}`; the room gets `user_joined` and `presence`."""
    room, online = live.join(sid, user, data["room"], data["legacy"])
    return _join_ack.dump({"room": room.id, "members": list(online.items())})


@socket_event(SendSchema())
def message(sid, user, data):
    """`message {room, messageBody, clientId?, replyTo?, attachments?}` -> `{ok, message}` once stored; room gets it."""
    stored, _ = live.send(
        sid, user, data["room"], data["message_body"], data["client_id"], data["reply_to"], data["attachments"]
    )
    return _message_ack.dump({"message": stored})


@socket_event(RoomEvent())
def left(sid, user, data):
    """`left {room}` -> `{ok, room}`; the socket stops receiving the room; `user_left` follows the last socket."""
    return _room_ack.dump({"room": live.leave(sid, user, data["room"]).id})


@socket_event(TypingEvent())
def typing(sid, user, data):
    """`typing {room, typing}` -> `{ok}`; the rest of the room gets `typing {room, userId, userName, typing}`."""
    live.typing(sid, user, data["room"], data["typing"])
    return {}


@socket_event(SyncEvent())
def sync(sid, user, data):
    """`sync {room, after, limit?}` -> `{ok, messages, nextCursor}`: what came after `after`, oldest first."""
    page, next_cursor = live.sync(user, data["room"], data["after"], data["limit"])
    return _page.dump({"messages": page, "next_cursor": next_cursor})


@socket_event(ReactEvent())
def react(sid, user, data):
    """`react {messageId, emoji, add}` -> `{ok, message}`, as PUT/DELETE /api/messages/<id>/reactions/<emoji>."""
    message = reactions.do_react(user, data["message_id"], data["emoji"], data["add"])
    return _message_ack.dump({"message": message})


@socket_event(ReadEvent())
def read(sid, user, data):
    """`read {room, messageId}` -> `{ok, room, lastReadMessageId, unreadCount, mentionCount}`, as `POST .../read`."""
    return _read_ack.dump(read_state.do_mark_read(user, data["room"], data["message_id"]))
