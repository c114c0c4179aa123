"""Every Socket.IO emit lives here, called by the services once their write has succeeded.

Socket.IO rooms are named by the room's id string.
"""

from services import presence
from utils.extensions import socketio
from utils.schemas.messages import MessageSchema
from utils.timefmt import iso

NAMESPACE = "/"
_message_schema = MessageSchema()


def message_payload(message):
    """Return the wire form of a message."""
    return _message_schema.dump(message)


def notify_message(message):
    """Broadcast a new message to its room, the sender's sockets included."""
    socketio.emit("message", message_payload(message), to=str(message.room))


def notify_message_updated(message):
    """Broadcast an edited message."""
    socketio.emit("message_updated", message_payload(message), to=str(message.room))


def notify_message_deleted(message):
    """Broadcast that a message was deleted."""
    room = str(message.room)
    socketio.emit("message_deleted", {"id": str(message.id), "room": room}, to=room)


def notify_joined(room, user_id, user_name, skip_sid=None):
    """Tell a room that a user came online in it."""
    socketio.emit("user_joined", {"room": room, "userId": user_id, "userName": user_name}, to=room, skip_sid=skip_sid)
    socketio.emit("presence", {"room": room, "userId": user_id, "online": True}, to=room, skip_sid=skip_sid)


def notify_left(room, user_id, user_name):
    """Tell a room that a user's last socket left it."""
    socketio.emit("user_left", {"room": room, "userId": user_id, "userName": user_name}, to=room)
    socketio.emit("presence", {"room": room, "userId": user_id, "online": False}, to=room)


def notify_typing(room, user_id, user_name, typing, skip_sid):
    """Tell everyone else in the room that a user is (or stopped) typing."""
    payload = {"room": room, "userId": user_id, "userName": user_name, "typing": typing}
    socketio.emit("typing", payload, to=room, skip_sid=skip_sid)


GRANT_PREFIX = "post:"


def post_grant(room, user_id):
    """The Socket.IO room holding a user's sockets that may post in a room without a membership read."""
    return f"{GRANT_PREFIX}{room}:{user_id}"


def notify_role_changed(room_id, user_id):
    """A member's role changed: their sockets, on every process, read it again before the next post."""
    socketio.close_room(post_grant(room_id, user_id), namespace=NAMESPACE)


def notify_member_removed(room_id, user_id):
    """Take a removed member's sockets, on every process, out of the room at once (their grant goes with it)."""
    _evict(str(room_id), str(user_id))


def notify_room_deleted(room_id):
    """Tell a deleted room's sockets, then take every one of them out of it."""
    room = str(room_id)
    socketio.emit("room_deleted", {"room": room}, to=room)
    _evict(room)
    socketio.close_room(room, namespace=NAMESPACE)


def _evict(room, user_id=None):
    """Take the room's sockets (of one user, or everyone's) out of it; tell it who went offline."""
    for sid, (uid, name) in presence.sockets_in_room(room).items():
        if user_id not in (None, uid):
            continue
        # The socket may be on another process: leave_room then travels through the message queue.
        socketio.server.leave_room(sid, room, namespace=NAMESPACE)
        if presence.leave(sid, room, uid):
            notify_left(room, uid, name)


def notify_token_revoked(jti):
    """Disconnect the sockets that authenticated with a revoked access token."""
    for sid in presence.sids_with_token(jti):
        socketio.server.disconnect(sid, namespace=NAMESPACE)


def notify_messages_archived(room_id, before):
    """Tell a room that its messages older than `before` moved to the archive."""
    room = str(room_id)
    socketio.emit("messages_archived", {"room": room, "before": iso(before)}, to=room)
