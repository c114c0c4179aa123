"""Reading the messages that hold one search key, newest first, in windows the index answers.

Each query pins one key and a range of an order: `(room, search_keys, seq)` within a room,
`(search_keys, _id)` across rooms. SecantusDB reads and sorts the whole range a query names
before it applies a limit (`model/message_scan.py` says the same of history), so a search asks
for a window at a time: a small one first, each next one sized from the hits found so far (at
most `GROWTH` times the last), until `wanted` hits are found or the order is exhausted. A
window holding more than `CAP` documents is read `CAP` at a time, newest first. On MongoDB
each window is one index scan that stops at its limit.

`accept` keeps the documents that are hits (a key stands for more words than the ones
searched, and the caller decides which rooms count), in the order given.
"""

from bson import ObjectId

from model.message import Message
from utils.timefmt import utcnow

CAP = 500
GROWTH = 8
# Positions are dense: a window of this many per hit wanted is enough when every message matches.
FIRST_POSITIONS = GROWTH
# Across rooms the order is the ids', whose first four bytes are seconds: the first window is the last minute.
FIRST_IDS = 60 << 64


def in_room(room_id, key, below, floor, wanted, accept):
    """Up to `wanted` accepted messages of a room holding `key`, at positions above `floor` and below `below`."""

    def fetch(low, high):
        return _newest({"room": room_id, "search_keys": key, "seq": {"$gte": low, "$lt": high}}, "seq")

    return _walk(fetch, lambda doc: doc["seq"], accept, below, below, floor + 1, wanted * FIRST_POSITIONS, wanted)


def across_rooms(key, before, wanted, accept):
    """Up to `wanted` accepted messages holding `key`, in any room, with ids below `before` (None: any)."""

    def fetch(low, high):
        ids = {"$gte": _oid(low)} if high is None else {"$gte": _oid(low), "$lt": _oid(high)}
        return _newest({"search_keys": key, "_id": ids}, "_id")

    top = None if before is None else _position(before)
    start = _position(before or ObjectId.from_datetime(utcnow()))
    return _walk(fetch, lambda doc: _position(doc["_id"]), accept, top, start, 0, FIRST_IDS, wanted)


def _newest(query, order):
    # One key and one range, nothing else: the shape SecantusDB's planner answers from a compound index.
    return list(Message._get_collection().find(query, {"search_keys": 0}).sort(order, -1).limit(CAP))


def _walk(fetch, position, accept, top, start, bottom, width, wanted):
    """Accepted documents, newest first, from windows `fetch(low, high)` (low <= position < high; high None: no
    bound) walking down from `top`; window sizes count from `start`, down to `bottom`."""
    found, high, reached = [], top, start
    while len(found) < wanted:
        low = max(bottom, reached - width)
        docs = fetch(low, high)
        found += accept(docs)
        if len(docs) == CAP:
            high = position(docs[-1])  # the rest of this window, below the last document read
            continue
        if low <= bottom:
            break
        width = _next_width(width, start - low, len(found), wanted)
        reached = high = low
    return found[:wanted]


def _next_width(width, covered, found, wanted):
    """As wide as the hits so far say the missing ones need, a quarter more; at most GROWTH times the last."""
    if not found:
        return width * GROWTH
    needed = covered * (wanted - found) // found
    return max(1, min(width * GROWTH, needed + needed // 4))


def _position(oid):
    return int.from_bytes(oid.binary, "big")


def _oid(position):
    return ObjectId(position.to_bytes(12, "big"))
