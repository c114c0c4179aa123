"""Reading the messages that hold one search key, newest first, in windows the index answers.

A query pins one key and a range of ids: the `(search_keys, _id)` index, whatever room the
messages are in (the caller keeps those of the rooms it wants). SecantusDB reads and sorts
the whole range a query names before it applies a limit (`model/message_scan.py` says the
same of history), so a search asks for a window of ids at a time: the last minute first, each
next one sized from the hits found so far (at most `GROWTH` times the last), until `wanted`
hits are found or the ids run out. A window found to hold more than `CAP` documents is read
on below its `CAP` newest, in windows as wide as those took (a second at least: below that,
ids are not time). On MongoDB each window is one index scan that stops at its limit.
"""

from bson import ObjectId

from model.message import Message
from utils.timefmt import utcnow

CAP = 500
GROWTH = 8
TRUST = 4  # hits it takes to size a window by them
# Positions here are ids read as numbers; their first four bytes are seconds.
SECOND = 1 << 64
FIRST_WINDOW = 60 * SECOND


def newest(key, before, wanted, accept, budget=None):
    """Return (up to `wanted` messages holding `key` with ids below `before` (None: any), newest id first,
    that `accept` keeps, None); `accept` takes the documents of a window, newest first, and returns the
    hits. With a `budget`, a walk that has read more documents than that without finding `wanted` hits
    stops and returns (the hits so far, the id below which it has not looked)."""

    def fetch(low, high):
        ids = {"$gte": _oid(low)} if high is None else {"$gte": _oid(low), "$lt": _oid(high)}
        # One key and one range, nothing else: the shape SecantusDB's planner answers from a compound index.
        query = {"search_keys": key, "_id": ids}
        return list(Message._get_collection().find(query, {"search_keys": 0}).sort("_id", -1).limit(CAP))

    found, read, high = [], 0, None if before is None else _position(before)
    start = reached = _position(before or ObjectId.from_datetime(utcnow()))
    width = FIRST_WINDOW
    while len(found) < wanted:
        low = max(0, reached - width)
        docs = fetch(low, high)
        hits = accept(docs)
        found, read = found + hits, read + len(docs)
        if len(docs) == CAP:  # the window holds more: go on below the last document read, as densely
            top = _position(docs[0]["_id"]) if high is None else high
            reached = high = _position(docs[-1]["_id"])
            width = max(SECOND, top - reached)
        elif low == 0:
            break
        else:
            reached = high = low
            width = _next_width(width, start - low, len(found), len(hits), wanted)
        if budget is not None and read > budget and len(found) < wanted:
            return found, _oid(reached)  # everything from `reached` up has been read
    return found[:wanted], None


def room_history(room_id, floor, ceiling):
    """Every document of a room at positions above `floor` up to `ceiling`, a thousand positions a query."""
    for start in range(floor + 1, ceiling + 1, 1000):
        positions = {"$gte": start, "$lt": start + 1000}
        yield from Message._get_collection().find({"room": room_id, "seq": positions}, {"search_keys": 0})


def _next_width(width, covered, found, new, wanted):
    """GROWTH times the last window; once a few hits say how far apart they are, as wide as the missing ones
    need (a quarter more) if that is less, but never narrower than the last window while it finds some."""
    if not new or found < TRUST:
        return width * GROWTH
    needed = covered * (wanted - found) // found
    return min(width * GROWTH, max(width, needed + needed // 4))


def _position(oid):
    return int.from_bytes(oid.binary, "big")


def _oid(position):
    return ObjectId(position.to_bytes(12, "big"))
