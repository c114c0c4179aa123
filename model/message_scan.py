"""Reading a room's messages in position order, in windows, without skipping one still being written.

SecantusDB's planner fetches and sorts a whole index range before it applies a limit, so an
open range on a busy room reads all of it; positions are dense, so each query asks for a
window of them the size of the page, widening until the page is full (a deleted room's or
a filled position's gap costs one more, wider window). On MongoDB each window is the same
index scan.

A reader moving forward (`newer`) stops before a position that is allocated but not yet
stored, unless the message after it is older than `gap_seconds` (its writer died): then it
fills the position with a tombstone and goes on. The newest page (`newest`) hides what lies
above such a position. So a cursor handed out never passes a message that lands later.
"""

from datetime import timedelta

from model.message_log import fill_gaps
from utils.timefmt import utcnow

WIDEN = 8
MAX_FILL = 1000  # positions one read fills at most


def position_of(collections, room_id, message_id):
    """The position of a message (or tombstone) of this room in any of `collections`, or None."""
    for collection in collections:
        doc = collection.find_one({"_id": message_id}, {"room": 1, "seq": 1})
        if doc is not None:
            return doc["seq"] if doc["room"] == room_id else None
    return None


def _windows(collection, room_id, start, stop, size, ascending, projection=None):
    """Yield the room's documents from position `start` towards `stop` (both included), in order."""
    step = 1 if ascending else -1
    while (start <= stop) if ascending else (start >= stop):
        end = min(stop, start + size - 1) if ascending else max(stop, start - size + 1)
        low, high = (start, end) if ascending else (end, start)
        window = {"room": room_id, "seq": {"$gte": low, "$lte": high}}
        yield from collection.find(window, projection).sort("seq", step)
        start, size = end + step, size * WIDEN


def older(collection, room_id, below, floor, wanted):
    """Up to `wanted` messages below position `below` and above `floor`, newest first."""
    page = []
    for doc in _windows(collection, room_id, below - 1, floor + 1, wanted, ascending=False):
        if not doc.get("gap"):
            page.append(doc)
            if len(page) == wanted:
                break
    return page


def newest(collection, room_id, floor, ceiling, wanted, gap_seconds):
    """Up to `wanted` of the newest messages at or below `ceiling`, newest first, none above a pending position."""
    young_after = utcnow() - timedelta(seconds=gap_seconds)
    page, above, young = [], None, True
    for doc in _windows(collection, room_id, ceiling, floor + 1, wanted, ascending=False):
        if above is not None and above["seq"] - doc["seq"] > 1 and above["time_stamp"] > young_after:
            page = []  # a position below `above` is still being written: show nothing above it yet
        young = young and doc["time_stamp"] > young_after
        above = doc
        if not doc.get("gap"):
            page.append(doc)
        if len(page) >= wanted and not young:
            break
    return page[:wanted]


def newer(collection, room_id, above, ceiling, wanted, gap_seconds):
    """Up to `wanted` messages after position `above`, oldest first, stopping before a pending position."""
    page = []
    for doc in settled(collection, room_id, above, ceiling, wanted, gap_seconds):
        if not doc.get("gap"):
            page.append(doc)
            if len(page) == wanted:
                break
    return page


def settled(collection, room_id, above, ceiling, size, gap_seconds):
    """Yield the room's documents (tombstones too) after position `above`, in order, up to `ceiling`, stopping before
    a pending position: each one yielded settles every position up to its own. Windows start at `size` positions."""
    old_before = utcnow() - timedelta(seconds=gap_seconds)
    expect = above + 1
    for doc in _windows(collection, room_id, above + 1, ceiling, size, ascending=True):
        if doc["seq"] != expect:
            missing = range(expect, doc["seq"])
            if doc["time_stamp"] > old_before:
                return  # still being written
            if not fill_gaps(room_id, missing[:MAX_FILL]):
                return  # a late message took a position: the next read returns it
            if len(missing) > MAX_FILL:
                return  # too wide to fill in one read: the next read goes on from the filled ones
        expect = doc["seq"] + 1
        yield doc


def settled_top(collection, room_id, floor, ceiling, gap_seconds):
    """The highest position at or below `ceiling` with no position under it still being written.

    What a reader of sparse positions (a thread's replies) may show: it walks down only
    through the positions allocated in the last `gap_seconds` (positions are handed out in
    time order), so older missing positions are not filled here, as `newer` does; they
    are the writers that died, which the room's own readers fill.
    """
    young_after = utcnow() - timedelta(seconds=gap_seconds)
    top, expect = ceiling, ceiling
    for doc in _windows(collection, room_id, ceiling, floor + 1, 64, False, {"seq": 1, "time_stamp": 1}):
        if doc["seq"] != expect:
            top = doc["seq"]  # the positions above it, up to `expect`, are not stored yet
        if doc["time_stamp"] <= young_after:
            return top
        expect = doc["seq"] - 1
    return top if expect == floor else floor
