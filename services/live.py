"""What sockets do: join, leave, post, type, sync, disconnect; and taking sockets out of rooms.

A Socket.IO room (a "channel", named by the room id's hex string) is what a broadcast
reaches. Taking sockets out of a channel, or disconnecting them, is a control message run
by every process against the sockets it really has (`transport.members`), never against an
index that may have forgotten one: see `evict`, `revoke_grants`, `disconnect_tokens`.
"""

from functools import partial

from bson import ObjectId
from flask import current_app

from model import message_log
from model.membership import POSTERS
from model.room import Room
from model.user import User
from services import grants, messages, notify, presence, rooms
from services.ratelimit import check_rate
from utils import transport
from utils.errors import AppError, Forbidden
from utils.extensions import socketio
from utils.transport import NAMESPACE, control, members


def connect(sid: str, user: User, claims: dict) -> None:
    """Remember an authenticated socket and put it in its user's channel (per-user events, `notify.user_channel`)."""
    presence.register(sid, user, claims)
    socketio.server.enter_room(sid, notify.user_channel(user.id), namespace=NAMESPACE)


def join(sid: str, user: User, ref: str | None, legacy: bool = False) -> tuple[Room, dict[str, str]]:
    """Join the socket to a room the user may read (public rooms make them a member); return (room, online).

    `legacy`: the socket joined `general` as the original service's clients do, and also gets its events.
    """
    check_rate(user, "join")
    since = grants.generation()
    room, role = rooms.do_join_room(user, ref)
    channel = str(room.id)
    enter = partial(socketio.server.enter_room, sid, channel, namespace=NAMESPACE)
    order = transport.ordering(socketio.server)
    if order is None:
        enter()
    else:  # the room's first socket here reads where the room stands: its messages from there on come in order
        order.join(channel, lambda: messages.settled_top(room) + 1, enter)
    if grants.generation() != since:  # a membership changed while we read it: read it again, now in the channel
        try:
            rooms.do_join_room(user, room.id)
        except AppError:
            socketio.server.leave_room(sid, channel, namespace=NAMESPACE)
            raise
    if role in POSTERS:  # the join read the right to post: the socket's first message needs no read of its own
        _grant(sid, channel, since)
    if legacy and room.id == rooms.general_id():
        socketio.server.enter_room(sid, notify.LEGACY_CHANNEL, namespace=NAMESPACE)
    if presence.enter(sid, channel) and not _drop_untold_left(channel, str(user.id)):
        notify.notify_joined(channel, str(user.id), user.username, skip_sid=sid)
        if channel == rooms.general_channel():
            notify.notify_legacy_joined(str(user.id), user.username, presence.online_users(channel))
    return room, presence.online_users(channel)


def leave(sid: str, user: User, ref: str | None) -> Room:
    """Stop this socket receiving a room; membership stays."""
    check_rate(user, "join")
    room, _ = rooms.access(user, ref)  # a private room's id is told only to whoever may see it
    leave_channel(sid, str(room.id))
    if room.id == rooms.general_id():
        socketio.server.leave_room(sid, notify.LEGACY_CHANNEL, namespace=NAMESPACE)
    return room


def leave_channel(sid: str, channel: str) -> None:
    """Take one socket of this process out of a channel; tell the room if it was its user's last there."""
    socketio.server.leave_room(sid, channel, namespace=NAMESPACE)
    socket = presence.entry(sid)
    if socket is not None and presence.leave(sid, channel):
        announce_left(channel, socket.user_id, socket.user_name)


# (channel, user id) of users whose last socket left a room this process has not told yet, each with the token of
# the wait that will tell it: a wait finds its own token or tells nothing (a rejoin dropped it, and a later
# departure has a wait of its own).
_leaving: dict[tuple[str, str], object] = {}


def _drop_untold_left(channel: str, user_id: str) -> bool:
    """Drop the user's departure from the room if it is still untold; whether it was (a rejoin cancels it)."""
    return _leaving.pop((channel, user_id), None) is not None


def announce_left(channel: str, user_id: str, user_name: str) -> None:
    """Tell a room, PRESENCE_GRACE_MS from now, that a user's last socket left it, unless they are back by then.

    Join/left churn (a flapping connection, a tab reloaded) then costs the room nothing.
    """
    if (channel, user_id) not in _leaving:
        _leaving[channel, user_id] = token = object()
        grace = current_app.config["PRESENCE_GRACE_MS"] / 1000
        socketio.start_background_task(_announce_left_later, channel, user_id, user_name, token, grace)


def _announce_left_later(channel, user_id, user_name, token, grace):
    socketio.sleep(grace)
    if _leaving.get((channel, user_id)) is not token:
        return  # they came back meanwhile (a departure since is another wait's to tell)
    del _leaving[channel, user_id]
    if user_id in presence.online_users(channel):
        return  # back on another process
    notify.notify_left(channel, user_id, user_name)
    if channel == rooms.general_channel():
        notify.notify_legacy_left(user_id, user_name, presence.online_users(channel))


def send(
    sid: str,
    user: User,
    ref: str | None,
    body: str,
    client_id: str | None,
    reply_to: ObjectId | None = None,
    attachments: list[ObjectId] = (),
):
    """Post from a socket: count the send against the rate limit, authorise (from the socket's grant when it has
    one), then `do_send_message`."""
    check_rate(user, "message")
    return messages.do_send_message(user, _postable(sid, user, ref), body, client_id, reply_to, attachments)


def _channel_of(ref: str | None) -> str | None:
    """The channel a reference names without a lookup (an id, or None for general); None for a name."""
    room_id = rooms.id_of(ref)
    return str(room_id) if room_id is not None else None


def _postable(sid: str, user: User, ref: str | None) -> ObjectId:
    room_id, channel = rooms.id_of(ref), _channel_of(ref)
    joined = channel in presence.entry(sid).rooms
    if joined and grants.has(sid, channel):
        return room_id
    since = grants.generation()
    room_id = rooms.postable(user, ref)
    if joined:
        _grant(sid, channel, since)
    return room_id


def _grant(sid: str, channel: str, since: int) -> None:
    grants.give(sid, channel, current_app.config["MEMBERSHIP_CACHE_SECONDS"], since)


def typing(sid: str, user: User, ref: str | None, is_typing: bool) -> None:
    """Relay a typing indicator to the rest of a room this socket has joined."""
    check_rate(user, "typing")  # before the lookup below, which an event over the limit must not cost
    joined, channel = presence.entry(sid).rooms, _channel_of(ref)
    if channel not in joined:  # a room named by its name costs one lookup
        room = rooms.find(ref)
        channel = str(room.id) if room is not None else None
    if channel not in joined:
        raise Forbidden("join the room before sending typing indicators")
    notify.notify_typing(channel, str(user.id), user.username, is_typing, skip_sid=sid)


def sync(user: User, ref: str | None, after: ObjectId, limit: int):
    """What a socket missed in a room: the messages after `after`, oldest first."""
    check_rate(user, "read")
    return messages.history(user, ref, limit, after=after)


def disconnect(sid: str) -> None:
    """Forget a socket and tell the rooms it was its user's last socket in."""
    grants.forget(sid)
    socket, last_in = presence.unregister(sid)
    for channel in last_in:
        announce_left(channel, socket.user_id, socket.user_name)


def evict(room_id: ObjectId, user_id: ObjectId | None = None) -> None:
    """Take a user's sockets (or everyone's) out of a room, on every process."""
    control(socketio.server, "evict", {"room": str(room_id), "user": str(user_id) if user_id else None})


def evict_here(payload: dict) -> None:
    """The local half of `evict`: this process's sockets in the channel."""
    channel, user_id = payload["room"], payload["user"]
    if user_id is None:  # the room was deleted
        message_log.forget_room(ObjectId(channel))
    grants.revoke(channel, user_id)
    for sid in members(socketio.server, channel):
        socket = presence.entry(sid)
        if user_id is None or socket is None or socket.user_id == user_id:
            leave_channel(sid, channel)


def revoke_grants(room_id: ObjectId, user_id: ObjectId) -> None:
    """A member's role changed: their sockets, on every process, read it again before the next post."""
    control(socketio.server, "grants", {"room": str(room_id), "user": str(user_id)})


def revoke_grants_here(payload: dict) -> None:
    """The local half of `revoke_grants`."""
    grants.revoke(payload["room"], payload["user"])


def disconnect_tokens(jtis: tuple[str, ...] = (), family: str | None = None) -> None:
    """Disconnect, on every process, the sockets that connected with these tokens or this token family."""
    control(socketio.server, "tokens", {"jtis": list(jtis), "family": family})


def disconnect_tokens_here(payload: dict) -> None:
    """The local half of `disconnect_tokens`."""
    jtis, family = set(payload["jtis"]), payload["family"]
    for sid, socket in presence.sockets().items():
        if socket.jti in jtis or (family is not None and socket.family == family):
            socketio.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
