"""Threads: a reply names its thread's root; the root counts its live, undeleted replies; pages of one thread.

A thread is flat: a reply to a reply joins the first one's thread. Replies are ordinary
messages of the room (history, sync and unread counts include them); the root's
`reply_count` and `last_reply_at` change only by atomic updates, and each change is
broadcast as `message_updated` with the root.
"""

from bson import ObjectId

from model import message_scan
from model.message import Message, MessageFields, replies_of
from model.writes import update_raw_by_id
from services import notify
from utils.errors import NotFound


def root_of(room_id: ObjectId, reply_to: ObjectId) -> ObjectId:
    """The thread root a reply to `reply_to` joins: a live, undeleted message of the same room."""
    target = Message._get_collection().find_one(
        {"_id": reply_to, "room": room_id, "deleted": False, "gap": {"$ne": True}, "stub": {"$ne": True}},
        {"reply_to": 1},
    )
    if target is None:
        raise NotFound.message(str(reply_to))
    return target.get("reply_to") or target["_id"]


def count_reply(reply: MessageFields) -> None:
    """A reply was stored: its root counts it."""
    count = {"$inc": {"reply_count": 1, "v": 1}, "$max": {"last_reply_at": reply.time_stamp}}
    notify.notify_message_updated(
        reply.reply_to, lambda: _live(update_raw_by_id(Message._get_collection(), {"_id": reply.reply_to}, count))
    )


def uncount_reply(reply: MessageFields) -> None:
    """A reply was deleted: its root stops counting it, and its last reply time falls back to the newest left."""
    collection = Message._get_collection()

    def uncount() -> Message | None:
        root = update_raw_by_id(collection, {"_id": reply.reply_to}, {"$inc": {"reply_count": -1, "v": 1}})
        if root is not None and root.get("last_reply_at") == reply.time_stamp:
            replies = replies_of(reply.room, reply.reply_to, {"$gte": 0})
            newest_first = collection.find(replies, {"time_stamp": 1, "deleted": 1}).sort("seq", -1)
            newest = next((doc for doc in newest_first if not doc["deleted"]), None)
            # Only if no newer reply moved it meanwhile (its `$max` wins either way).
            root = update_raw_by_id(
                collection,
                {"_id": root["_id"], "last_reply_at": reply.time_stamp},
                {"$set": {"last_reply_at": newest["time_stamp"] if newest else None}, "$inc": {"v": 1}},
            ) or collection.find_one({"_id": root["_id"]})
        return _live(root)

    notify.notify_message_updated(reply.reply_to, uncount)


def _live(root: dict | None) -> Message | None:
    """The root as read back after its update, when there is one to broadcast (not deleted)."""
    return Message._from_son(root) if root is not None and not root.get("deleted") else None


def page(collection, room_id, root_id, floor, ceiling, wanted, below=None, above=None, gap_seconds=None):
    """A thread's replies between `floor` and `ceiling`, as a room history page: below a position (newest
    first), above one (oldest first), or the newest. `gap_seconds` (live reads) hides replies above a
    position still being written, so a cursor never passes a reply stored later.
    """
    if gap_seconds is not None and below is None:
        ceiling = message_scan.settled_top(collection, room_id, floor, ceiling, gap_seconds)
    if above is not None:
        span, order = {"$gt": above, "$lte": ceiling}, 1
    else:
        span, order = {"$gt": floor, "$lt": below if below is not None else ceiling + 1}, -1
    return list(collection.find(replies_of(room_id, root_id, span)).sort("seq", order).limit(wanted))
