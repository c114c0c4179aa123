"""Mentions: whom a message names, who is told, and each user's mentions feed."""

import re

from bson import ObjectId
from flask import current_app

from model.membership import MANAGERS, Membership
from model.message import Message, MessageFields
from model.room import Room
from model.user import User
from services import notify
from services.permissions import is_admin

# `@name` at the start of the body or after a character that is no letter, digit or `_`.
_MENTION = re.compile(r"(?<!\w)@([A-Za-z0-9_.-]+)")
# Everyone in the room, from its owner, moderators and admins; never a username.
ROOM_WORDS = frozenset({"room", "here"})


def resolve(user: User, room_id: ObjectId, body: str) -> tuple[list[ObjectId], bool]:
    """Return (members named by `@username`, whether `@room`/`@here` counts) for a body posted by `user`."""
    if "@" not in body:  # the common case costs no query
        return [], False
    names = _names(body)
    mentions_room = bool(names & ROOM_WORDS) and _may_mention_room(user, room_id)
    names -= ROOM_WORDS
    if not names:
        return [], mentions_room
    named = [user_id for user_id in User.objects(username_key__in=list(names)).scalar("id")]
    members = set(Membership.objects(room=room_id, user__in=named).scalar("user"))
    return [user_id for user_id in named if user_id in members], mentions_room


def _names(body: str) -> set[str]:
    """The lower-cased names a body mentions; `@bob.` at the end of a sentence names `bob` as well as `bob.`."""
    names = set()
    for match in _MENTION.finditer(body):
        name = match.group(1).lower()
        names.update({name, name.rstrip(".-")} - {""})
    return names


def _may_mention_room(user: User, room_id: ObjectId) -> bool:
    return is_admin(user) or Membership.role_of(room_id, user.id) in MANAGERS


def notify_mentioned(message: MessageFields, kind: str, before: MessageFields | None = None) -> None:
    """Tell the users a message names (in a DM: every other participant) with `notification`, once each.

    `before` is the message as it was before an edit: whoever it already told is not told again,
    and an edit in a DM tells nobody (the message itself already did).
    """
    if kind == "dm":
        if before is None:
            others = Membership.objects(room=message.room, user__ne=message.user_id).scalar("user")
            notify.notify_notification(list(others), "dm", message)
        return
    recipients = _told(message) - (_told(before) if before is not None else set())
    notify.notify_notification(sorted(recipients), "mention", message)


def _told(message: MessageFields) -> set[ObjectId]:
    """Who a message's mentions tell: the members it names, and everyone for `@room`; never its author."""
    told = set(message.mentions)
    if message.mentions_room:
        told.update(_room_members(message.room))
    return told - {message.user_id}


def _room_members(room_id: ObjectId) -> list[ObjectId]:
    """Everyone `@room` tells: the room's members, unless the room is too big for one event each."""
    limit = current_app.config["MENTION_ROOM_MAX_MEMBERS"]
    members = list(Membership.objects(room=room_id).limit(limit + 1).scalar("user"))
    return members if len(members) <= limit else []


def feed(user: User, limit: int, before: ObjectId | None) -> tuple[list[Message], str | None]:
    """Messages naming the user in rooms they may still read, or `@room` in their rooms: (page, nextCursor).

    Newest first by id. Each source gives its newest `limit + 1`, so the merged page and the
    presence of a next one are exact.
    """
    below = before or _AFTER_ALL
    mine = list(Membership.objects(user=user.id).scalar("room"))
    found = {message.id: message for message in _room_wide(mine, below, limit + 1)}
    found.update((message.id, message) for message in _named_readable(user, below, limit + 1, set(mine)))
    page = sorted(found.values(), key=lambda message: message.id, reverse=True)
    return page[:limit], str(page[limit - 1].id) if len(page) > limit else None


# Above every id: the first page's cursor, so that both queries always bound the index's second key.
_AFTER_ALL = ObjectId("f" * 24)


def _room_wide(rooms: list[ObjectId], below: ObjectId, wanted: int) -> list[Message]:
    """The newest `wanted` `@room`/`@here` messages of these rooms below an id.

    `@room` comes from managers only, so these are few: the ids are read from the partial index
    without a bound (SecantusDB scans the collection for a list of rooms with an id range).
    A deleted message loses its mentions, so none is filtered out here.
    """
    newest_first = Message.objects(room__in=rooms, mentions_room=True).order_by("-id").scalar("id")
    ids = [message_id for message_id in newest_first if message_id < below][:wanted]
    return list(Message.objects(id__in=ids)) if ids else []


def _named_readable(user: User, below: ObjectId, wanted: int, mine: set[ObjectId]) -> list[Message]:
    """The newest `wanted` messages naming the user, below an id, in rooms they may read now."""
    public, found = {}, []
    while len(found) < wanted:
        batch = list(Message.objects(mentions=user.id, id__lt=below).order_by("-id").limit(wanted))
        for message in batch:
            if message.room not in public:
                public[message.room] = Room.objects(id=message.room, private=False).count() > 0
            if message.room in mine or public[message.room] or is_admin(user):
                found.append(message)
        if len(batch) < wanted:
            break
        below = batch[-1].id
    return found[:wanted]
