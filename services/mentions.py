"""Mentions: whom a message names, who is told, and each user's mentions feed."""

import re

from bson import ObjectId
from flask import current_app
from pymongo import UpdateOne

from model import message_search
from model.membership import MANAGERS, Membership
from model.message import Message, MessageFields
from model.message_log import top_position
from model.migrations import once
from model.room import Room
from model.user import User
from services import notify
from services.permissions import is_admin
from utils.search_keys import mention_keys, room_key, user_key

# `@name` at the start of the body or after a character that is no letter, digit or `_`.
_MENTION = re.compile(r"(?<!\w)@([A-Za-z0-9_.-]+)")
# Everyone in the room, from its owner, moderators and admins; never a username.
ROOM_WORDS = frozenset({"room", "here"})
MIGRATION = "mention-keys"


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

    Newest first by id, from the messages' mention keys (`utils/search_keys.py`). Each source
    gives its newest `limit + 1`, so the merged page and the presence of a next one are exact.
    """
    mine = list(Membership.objects(user=user.id).scalar("room"))
    found = {message.id: message for message in _room_wide(mine, before, limit + 1)}
    found.update((message.id, message) for message in _named_readable(user, before, limit + 1, set(mine)))
    page = sorted(found.values(), key=lambda message: message.id, reverse=True)
    return page[:limit], str(page[limit - 1].id) if len(page) > limit else None


def _room_wide(rooms: list[ObjectId], before: ObjectId | None, wanted: int) -> list[Message]:
    """The newest `wanted` `@room`/`@here` messages of these rooms below an id (None: any).

    `@room` comes from managers only, so these are few: their ids are read in one query of the
    rooms' keys, without an id bound (SecantusDB plans `$in` over the keys of an index alone, but
    scans the collection for `$in` with an id range; a query a room would cost a query for each
    of the user's rooms). A deleted message has no keys, so none is filtered out here.
    """
    keys = [room_key(room) for room in rooms]
    newest_first = Message.objects(search_keys__in=keys).order_by("-id").scalar("id")
    ids = [message_id for message_id in newest_first if before is None or message_id < before][:wanted]
    return list(Message.objects(id__in=ids)) if ids else []


def _named_readable(user: User, before: ObjectId | None, wanted: int, mine: set[ObjectId]) -> list[Message]:
    """The newest `wanted` messages naming the user, below an id (None: any), in rooms they may read now.

    Read as search reads one key (`model/message_search.py`), in windows of ids: a page reads
    about what it shows, however often the user has been named.
    """
    admin, public = is_admin(user), {}

    def readable(docs):
        for room_id in {doc["room"] for doc in docs} - mine - public.keys():
            public[room_id] = Room.objects(id=room_id, private=False).count() > 0
        return [doc for doc in docs if doc["room"] in mine or admin or public[doc["room"]]]

    found, _ = message_search.newest(user_key(user.id), before, wanted, readable)
    return [Message._from_son(doc) for doc in found]


@once(MIGRATION)
def key_old_mentions(db) -> None:
    """Give mention keys to the live messages that mentioned anyone before messages had them (after
    `services/search.index_old_messages` gave them their words' keys)."""
    messages = Message._get_collection()
    for room in Room._get_collection().find({}, {"archived_seq": 1}):
        docs = message_search.room_history(room["_id"], room.get("archived_seq", 0), top_position(room["_id"], db))
        updates = [add_mention_keys(doc) for doc in docs if doc.get("mentions") or doc.get("mentions_room")]
        if updates:
            messages.bulk_write(updates, ordered=False)


def add_mention_keys(doc: dict) -> UpdateOne:
    """The update adding a message's mention keys to its search keys, if its mentions are still those read (an edit
    since wrote keys of its own, a delete removed them all). Filtered on `_id` alone, the condition in the update:
    SecantusDB scans the collection for a filter naming another field too."""
    named, everyone = doc.get("mentions", []), doc.get("mentions_room", False)
    unchanged = {
        "$and": [
            {"$eq": [{"$ifNull": ["$mentions", []]}, {"$literal": named}]},
            {"$eq": [{"$ifNull": ["$mentions_room", False]}, everyone]},
        ]
    }
    keys = {"$literal": mention_keys(doc["room"], named, everyone)}
    added = {"$setUnion": [{"$ifNull": ["$search_keys", []]}, keys]}
    return UpdateOne({"_id": doc["_id"]}, [{"$set": {"search_keys": {"$cond": [unchanged, added, "$search_keys"]}}}])
