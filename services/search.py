"""Message search: every word of a query, newest first, in the rooms the caller may read.

Answered from the messages' search keys (`utils/search_keys.py`, stored with each message by
`services/messages.py`): one key is looked up through an index (`model/message_search.py`),
and each message found is checked against the whole query and the caller's rights. Within
a room results follow the room's positions; across rooms, the message ids (time, to the
second, then the storing process's own order). Archived messages are not searched.
"""

from functools import partial

from bson import ObjectId
from pymongo import UpdateOne

from model import message_search
from model.membership import Membership, Role
from model.message import Message, MessageFields
from model.room import Room
from model.user import User
from services import rooms
from services.messages import cursor_position
from services.permissions import check_can_read
from utils.errors import NotFound
from utils.search_keys import Query, keys_of
from utils.timefmt import utcnow

MIGRATION = "message-search-keys"
BACKFILL_BATCH = 1000  # positions of one room read and updated at a time


def search(
    user: User, query: Query, ref: rooms.Ref, limit: int, before: ObjectId | None = None
) -> tuple[list[MessageFields], str | None]:
    """Return (messages, nextCursor): live, undeleted messages matching `query`, newest first.

    `ref` names one room (`not_found` unless the caller may read it); None means every room
    the caller may read. `before` continues from a message of an earlier page.
    """
    if ref is None:
        readable = _Readable(user)
        hits = message_search.across_rooms(query.key, before, limit + 1, lambda docs: _hits(query, readable.keep(docs)))
    else:
        room, _ = rooms.access(user, ref)
        below = room.seq + 1 if before is None else min(cursor_position(room, before, "before"), room.seq + 1)
        hits = message_search.in_room(room.id, query.key, below, room.archived_seq, limit + 1, partial(_hits, query))
    page = [Message._from_son(doc) for doc in hits[:limit]]
    return page, str(page[-1].id) if len(hits) > limit else None


def _hits(query: Query, docs: list[dict]) -> list[dict]:
    """The documents that hold the whole query (a key stands for more words than those searched)."""
    return [doc for doc in docs if not doc.get("deleted") and query.matches(doc.get("message_body", ""))]


class _Readable:
    """Which rooms of the messages found the caller may read, each looked up once per search."""

    def __init__(self, user: User):
        self.user = user
        self.floors = {}  # room id -> its archive watermark, or None when the caller may not read it

    def keep(self, docs: list[dict]) -> list[dict]:
        """The documents of readable rooms that are not yet archived."""
        unknown = {doc["room"] for doc in docs} - self.floors.keys()
        if unknown:
            self._learn(list(unknown))
        return [doc for doc in docs if self.floors[doc["room"]] is not None and doc["seq"] > self.floors[doc["room"]]]

    def _learn(self, room_ids: list[ObjectId]) -> None:
        memberships = Membership._get_collection().find({"user": self.user.id, "room": {"$in": room_ids}})
        roles = {found["room"]: Role(found["role"]) for found in memberships}
        self.floors.update(dict.fromkeys(room_ids))  # rooms that are gone stay unreadable
        for room in Room.objects(id__in=room_ids).only("private", "archived_seq"):
            try:
                check_can_read(self.user, room, roles.get(room.id), room.id)
            except NotFound:
                continue
            self.floors[room.id] = room.archived_seq


def index_old_messages() -> None:
    """Give search keys to the live messages stored before messages had them (once per database, at start-up)."""
    db = Message._get_collection().database
    if db.migrations.find_one({"_id": MIGRATION}):
        return
    messages = Message._get_collection()
    for room in Room._get_collection().find({}, {"seq": 1, "archived_seq": 1}):
        for start in range(room.get("archived_seq", 0) + 1, room.get("seq", 0) + 1, BACKFILL_BATCH):
            positions = {"$gte": start, "$lt": start + BACKFILL_BATCH}
            docs = messages.find({"room": room["_id"], "seq": positions}, {"message_body": 1, "search_keys": 1})
            updates = [
                # Only if unchanged since read: an edit meanwhile wrote the keys of its own body.
                UpdateOne(
                    {"_id": doc["_id"], "message_body": doc["message_body"], "search_keys": {"$exists": False}},
                    {"$set": {"search_keys": keys_of(doc["message_body"])}},
                )
                for doc in docs
                if "search_keys" not in doc and doc.get("message_body")
            ]
            if updates:
                messages.bulk_write(updates, ordered=False)
    db.migrations.update_one({"_id": MIGRATION}, {"$set": {"at": utcnow()}}, upsert=True)
