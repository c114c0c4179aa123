"""Every Socket.IO emit to clients lives here, called by the services once their write has succeeded.

A room's broadcasts go to its channel: the Socket.IO room named by the room id's hex string.
What is for one user (`notification`, `room_added`) goes to their channel, `user:<id>`, which
every socket of theirs is in from connect (`live.connect`), on whatever process.

A message's changes made at once (users reacting together) each broadcast the message, and
their handlers run in no set order: a client keeping the last state it got would keep an old
one. So a change is written, read back and broadcast with a lock for that message held
(`in_order`), and this process's broadcasts of a message go from state to state in the
database's order; a member's read receipts likewise (`read_state.do_mark_read`).
"""

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from bson import ObjectId

from model.message import MessageFields
from utils.extensions import socketio
from utils.schemas.events import OnlineUserSchema
from utils.schemas.messages import MessageSchema
from utils.schemas.rooms import RoomSchema
from utils.timefmt import iso
from utils.transport.hub import SKIPPED
from utils.transport.ordering import DELETED, Stamped

if TYPE_CHECKING:  # services.rooms imports this module
    from services.rooms import RoomView

_message, _deleted = MessageSchema(), MessageSchema(only=("id", "room"))
_room = RoomSchema()
_online = OnlineUserSchema(many=True)
# The sockets that joined `general` the way the original single-room service's clients do.
LEGACY_CHANNEL = "legacy:general"
# The locks `in_order` hands out, by key (green under eventlet and gevent).
_IN_ORDER = [threading.Lock() for _ in range(64)]


def user_channel(user_id: ObjectId | str) -> str:
    """The Socket.IO channel every socket of one user is in."""
    return f"user:{user_id}"


def notify_notification(user_ids: list[ObjectId], reason: str, message: MessageFields) -> None:
    """Tell users, on all their sockets, of a message that mentions them or came in one of their DMs."""
    if user_ids:
        payload = {"reason": reason, "room": str(message.room), "message": _message.dump(message)}
        socketio.emit("notification", payload, to=[user_channel(user_id) for user_id in user_ids])


def notify_room_added(user_id: ObjectId, room: "RoomView") -> None:
    """Tell a user, on all their sockets, of a room someone else added them to (a new DM included), as they see it."""
    socketio.emit("room_added", {"room": _room.dump(room)}, to=user_channel(user_id))


def notify_message(message: MessageFields) -> None:
    """Broadcast a new message to its room, the sender's sockets included, with its position: every process delivers
    a room's messages in their positions' order (`utils/transport/ordering.py`)."""
    socketio.emit("message", Stamped(message_payload(message), message.seq), to=str(message.room))


def notify_position_skipped(room_id: ObjectId, seq: int) -> None:
    """Tell every process, never a client, that a room's position holds no message (a send that failed there left a
    tombstone): the order of delivery goes on past it at once (`utils/transport/ordering.py`)."""
    socketio.emit(SKIPPED, Stamped({"room": str(room_id)}, seq), to=str(room_id))


def message_payload(message: MessageFields) -> dict:
    """A message as its room's `message` event carries it."""
    return _message.dump(message)


def notify_message_updated(message_id: ObjectId, write: Callable[[], MessageFields | None]) -> MessageFields | None:
    """Change a message and broadcast it as it is after the change: `write()` makes the update and reads the message
    back (None: the update did not apply, nothing is broadcast). Both hold the message's lock (`in_order`), so this
    process's broadcasts of a message go from state to state in the database's order. Returns what `write` did."""
    with in_order(message_id):
        message = write()
        if message is not None:
            socketio.emit("message_updated", _versioned(message), to=str(message.room))
    return message


def _versioned(message: MessageFields) -> dict:
    """The message as `message_updated` carries it, stamped with its version: every process delivers a message's
    states in its versions' order, whichever process changed it (`utils/transport/ordering.py`)."""
    payload = message_payload(message)
    return payload if message.version is None else Stamped(payload, message.version, message.seq)


def notify_message_deleted(message: MessageFields, delete: Callable[[], bool]) -> bool:
    """Delete a message (`delete()`: whether it did) and broadcast that, holding the message's lock: no
    `message_updated` of it leaves this process after its `message_deleted`."""
    with in_order(message.id):
        deleted = delete()
        if deleted:
            deletion = Stamped(_deleted.dump(message), DELETED, message.seq)
            socketio.emit("message_deleted", deletion, to=str(message.room))
    return deleted


def in_order(key) -> threading.Lock:
    """The lock of `key` (a message's id; a room's and a member's): a change to it made and broadcast holding the lock
    reaches the room in the order the database took the changes."""
    return _IN_ORDER[hash(key) % len(_IN_ORDER)]


def notify_joined(channel: str, user_id: str, user_name: str, skip_sid: str | None = None) -> None:
    """Tell a room that a user came online in it."""
    payload = {"room": channel, "userId": user_id, "userName": user_name}
    socketio.emit("user_joined", payload, to=channel, skip_sid=skip_sid)
    socketio.emit("presence", {"room": channel, "userId": user_id, "online": True}, to=channel, skip_sid=skip_sid)


def notify_left(channel: str, user_id: str, user_name: str) -> None:
    """Tell a room that a user's last socket left it."""
    socketio.emit("user_left", {"room": channel, "userId": user_id, "userName": user_name}, to=channel)
    socketio.emit("presence", {"room": channel, "userId": user_id, "online": False}, to=channel)


def notify_legacy_joined(user_id: str, user_name: str, online: dict[str, str]) -> None:
    """The original service's events for `general`: `userJoined`, then `onlineUsers`."""
    socketio.emit("userJoined", {"userId": user_id, "userName": user_name}, to=LEGACY_CHANNEL)
    socketio.emit("onlineUsers", _online.dump(list(online.items())), to=LEGACY_CHANNEL)


def notify_legacy_left(user_id: str, user_name: str, online: dict[str, str]) -> None:
    """The original service's events for `general`: `userLeft`, then `onlineUsers`."""
    socketio.emit("userLeft", {"userId": user_id, "userName": user_name}, to=LEGACY_CHANNEL)
    socketio.emit("onlineUsers", _online.dump(list(online.items())), to=LEGACY_CHANNEL)


def notify_typing(channel: str, user_id: str, user_name: str, typing: bool, skip_sid: str) -> None:
    """Tell everyone else in the room that a user is (or stopped) typing."""
    payload = {"room": channel, "userId": user_id, "userName": user_name, "typing": typing}
    socketio.emit("typing", payload, to=channel, skip_sid=skip_sid)


def notify_read_receipt(
    room_id: ObjectId, user_id: ObjectId, user_name: str, message_id: ObjectId, seq: int, whole_room: bool
) -> None:
    """Tell a room how far a member has read (to the message at position `seq`), or only that member's sockets (a
    room too large for receipts). Stamped with the position: every process delivers a member's receipts in the order
    their marker moved, whichever process moved it (`utils/transport/ordering.py`)."""
    payload = {"room": str(room_id), "userId": str(user_id), "userName": user_name, "messageId": str(message_id)}
    channels = [user_channel(user_id), str(room_id)] if whole_room else [user_channel(user_id)]
    socketio.emit("read_receipt", Stamped(payload, seq, seq), to=channels)


def notify_room_deleted(room_id: ObjectId) -> None:
    """Tell a deleted room's sockets (who are then evicted: `live.evict`)."""
    channel = str(room_id)
    socketio.emit("room_deleted", {"room": channel}, to=channel)


def notify_messages_archived(room_id: ObjectId, before) -> None:
    """Tell a room that its messages older than `before` moved to the archive."""
    channel = str(room_id)
    socketio.emit("messages_archived", {"room": channel, "before": iso(before)}, to=channel)


def notify_resync(sid: str, channels: list[str]) -> None:
    """Tell one socket of this process that it may have missed broadcasts in these rooms."""
    socketio.server.emit("resync", {"rooms": channels}, to=sid, ignore_queue=True)
