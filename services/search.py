"""Message search: every word of a query, newest first, in the rooms the caller may read.

Answered from the messages' search keys (`utils/search_keys.py`, stored with each message by
`services/messages.py`): one key is looked up through an index (`model/message_search.py`),
and each message found is checked against the whole query and the caller's right to read its
room. Results are in message id order, in one room as across rooms: one index serves both
(each index costs every send an entry per key; docs/PERFORMANCE.md). Archived messages are
not searched.
"""

from bson import ObjectId
from pymongo import UpdateOne

from model import message_search
from model.membership import Membership, Role
from model.message import Message, MessageFields
from model.message_log import top_position
from model.migrations import once
from model.room import Ref, Room
from model.user import User
from services import rooms
from services.permissions import check_can_read
from utils.errors import NotFound
from utils.search_keys import Query, keys_of

MIGRATION = "message-search-keys"
BACKFILL_BATCH = 1000  # positions of one room read and updated at a time


def search(
    user: User, query: Query, ref: Ref, limit: int, before: ObjectId | None = None
) -> tuple[list[MessageFields], str | None]:
    """Return (messages, nextCursor): live, undeleted messages matching `query`, newest first.

    `ref` names one room (`not_found` unless the caller may read it); None means every room
    the caller may read. `before` continues from the last message of an earlier page.
    """
    room = None if ref is None else rooms.access(user, ref)[0]
    readable = _Readable(user, room)

    def hits(docs):
        return [doc for doc in readable.keep(docs) if query.matches(doc.get("message_body", ""))]

    if room is None:
        found, _ = message_search.newest(query.key, before, limit + 1, hits)
    else:
        found = _in_room(room, query.key, before, limit + 1, hits)
    page = [Message._from_son(doc) for doc in found[:limit]]
    return page, str(page[-1].id) if len(found) > limit else None


def _in_room(room: Room, key: str, before: ObjectId | None, wanted: int, hits) -> list[dict]:
    """A room's hits: the key's messages of every room, this one's kept, until reading them has cost more than
    reading the whole room would (a room holding few of the key's messages); then the rest of the room."""
    top = top_position(room.id)
    found, below = message_search.newest(key, before, wanted, hits, budget=top - room.archived_seq)
    if below is not None:
        rest = [doc for doc in message_search.room_history(room.id, room.archived_seq, top) if doc["_id"] < below]
        found += hits(sorted(rest, key=lambda doc: doc["_id"], reverse=True))[: wanted - len(found)]
    return found


class _Readable:
    """Which rooms of the messages found count: the one searched, or those the caller may read, each looked up once."""

    def __init__(self, user: User, room: Room | None):
        self.user, self.only = user, room
        # room id -> its archive watermark (positions at or below it are archived), or None: not searched.
        self.floors = {} if room is None else {room.id: room.archived_seq}

    def keep(self, docs: list[dict]) -> list[dict]:
        """The live, undeleted messages among `docs` of the rooms that count."""
        if self.only is None:
            unknown = {doc["room"] for doc in docs} - self.floors.keys()
            if unknown:
                self._learn(list(unknown))
        return [doc for doc in docs if not doc.get("deleted") and self._unarchived(doc)]

    def _unarchived(self, doc: dict) -> bool:
        floor = self.floors.get(doc["room"])
        return floor is not None and doc["seq"] > floor

    def _learn(self, room_ids: list[ObjectId]) -> None:
        memberships = Membership._get_collection().find({"user": self.user.id, "room": {"$in": room_ids}})
        roles = {found["room"]: Role(found["role"]) for found in memberships}
        self.floors.update(dict.fromkeys(room_ids))  # rooms that are gone stay unread
        for room in Room.objects(id__in=room_ids).only("private", "archived_seq"):
            try:
                check_can_read(self.user, room, roles.get(room.id), room.id)
            except NotFound:
                continue
            self.floors[room.id] = room.archived_seq


@once(MIGRATION)
def index_old_messages(db) -> None:
    """Give search keys to the live messages stored before messages had them."""
    messages = Message._get_collection()
    for room in Room._get_collection().find({}, {"archived_seq": 1}):
        top = top_position(room["_id"], db)
        for start in range(room.get("archived_seq", 0) + 1, top + 1, BACKFILL_BATCH):
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
