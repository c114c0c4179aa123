"""Read state: each member's read marker, unread and mention counts, read receipts, who read a message.

A marker is the position (`seq`) of the last message a member read, kept on their membership
with that message's id and the time it moved; it only moves forward. Counting starts after
it, or, for a member who has not read anything yet, after the room's position when they
joined. Counts stop at UNREAD_CAP (a client shows "99+"), and every query reads a bounded
range of an index: a window of positions after the marker, widened only while it holds too
few messages to count (SecantusDB reads a whole index range before it applies a limit).

Sending moves the sender's marker too, but off the send's path: `mark_sent` keeps the
furthest position per (room, sender) in this process's memory, and one background task
writes what gathered every SENT_MARKERS_MS in one unordered bulk write. Until it is written,
this process answers the sender's read state (counts, last read message, readers) with that
move taken into account. Alone (no REDIS_URL) the process answers every read, so moves
gather for 5 s; with REDIS_URL other processes answer reads, so the stored marker follows
within half a second. A process that dies may lose what it held, so that others' messages
before a sender's own count as unread again for them; a stop writes it first. The wait is
what keeps sending cheap: a marker write costs the embedded database more than storing a
message (docs/PERFORMANCE.md), and a member who sends ten messages in that time costs one write.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from flask import current_app
from pymongo import UpdateOne, WriteConcern
from pymongo.errors import ConnectionFailure

from model import message_scan
from model.archived_message import ArchivedMessage
from model.membership import Membership
from model.message import Message, MessageFields
from model.message_log import top_position
from model.room import Room
from model.user import User
from services import notify, rooms  # rooms imports this module: only its attributes at call time
from services.ratelimit import check_rate
from utils.errors import Forbidden, NotFound
from utils.extensions import socketio
from utils.ids import parse_id
from utils.search_keys import room_key, user_key
from utils.timefmt import utcnow

UNREAD_CAP = 100  # unread and mention counts stop here
READERS_CAP = 1000  # readers listed for one message at most
# What counting needs of a membership, and of a message.
MARKER_FIELDS = ("joined_seq", "read_seq", "read_message")
# A sender's marker may be lost anyway (a dead process loses its buffer): its write need not be journaled.
_UNJOURNALED = WriteConcern(w=1, j=False)
# Marker moves per write command, and the pause between two commands of one period's write: SecantusDB rewrites
# each membership's indexes, 1-2 ms a move, and sends wait behind a long command or a run of them (a stop pauses not).
_MOVES_PER_WRITE = 25
_PAUSE_SECONDS = 0.05
_MARK = {"user": 1, "joined_seq": 1}
_FIELDS = {"seq": 1, "user_id": 1, "deleted": 1, "gap": 1, "stub": 1, "mentions": 1, "mentions_room": 1}
# Ids are times. A message at a later position than another got its id at most seconds before it (its
# group commit; a tombstone's is GAP_SECONDS late; processes' clocks apart): an hour below bounds them.
ID_MARGIN = timedelta(hours=1)
log = logging.getLogger(__name__)


@dataclass
class ReadState:
    """A member's read state in one room, as `read` answers it."""

    room: ObjectId
    last_read_message_id: ObjectId | None
    unread_count: int
    mention_count: int


@dataclass
class Reader:
    """A member whose marker is at or after a message, and when it last moved."""

    user_id: ObjectId
    user_name: str
    read_at: datetime


def do_mark_read(user: User, ref: str | None, message_id: ObjectId) -> ReadState:
    """Move the caller's marker forward to a message of the room; tell the room (`read_receipt`) when it moved."""
    check_rate(user, "read")
    room, role = rooms.access(user, ref)
    if role is None:
        raise Forbidden("only the room's members have a read marker: join it first")
    message = _locate(message_id)
    if message is None or message["room"] != room.id:
        raise NotFound.message(message_id)
    membership = _membership(room.id, user.id)
    # A move held here past it (their own later send) answers as moved already: no receipt takes the marker back.
    behind = membership is not None and (marker(room.id, user.id, membership)[0] or 0) < message["seq"]
    # One move and its receipt at a time: the receipts of a member's reads made at once never go back.
    with notify.in_order((room.id, user.id)):
        moved = behind and _move(room.id, user.id, message["seq"], message_id)
        if moved:
            to_room = _receipts_to_room(room.id)
            notify.notify_read_receipt(room.id, user.id, user.username, message_id, message["seq"], to_room)
    if moved:
        membership = _membership(room.id, user.id)
    if membership is None:  # they left meanwhile
        return ReadState(room.id, None, 0, 0)
    _, last_read = marker(room.id, user.id, membership)
    return ReadState(room.id, last_read, *counts(user.id, room, membership, top_position(room.id)))


def summary(user_id: ObjectId, room: Room, membership: Membership | None, top: int) -> dict:
    """The caller's read state of a room whose last position is `top`, as RoomView fields; a non-member (None) has
    nothing unread."""
    state = {"last_message_at": last_message_at(room, top)}
    if membership is not None:
        unread, mentions = counts(user_id, room, membership, top)
        state.update(
            unread_count=unread, mention_count=mentions, last_read_message_id=marker(room.id, user_id, membership)[1]
        )
    return state


def readers(user: User, message_id: str) -> list[Reader]:
    """The members other than the author whose marker is at or after a message the caller may read, earliest first."""
    oid = parse_id(message_id)
    message = _locate(oid) if oid else None
    if message is None:
        raise NotFound.message(message_id)
    try:
        rooms.access(user, message["room"])
    except NotFound:
        raise NotFound.message(message_id) from None
    # The held moves first: one written while the stored marks are read is then in one or the other.
    held = _sent.held_in(message["room"])
    query = {"room": message["room"], "read_seq": {"$gte": message["seq"]}}
    # The earliest first, before the cap: past it, those listed are the first whose markers moved.
    found = Membership._get_collection().find(query, {"user": 1, "read_at": 1}).sort("read_at", 1)
    marks = [mark for mark in found.limit(READERS_CAP + 1) if mark["user"] != message["user_id"]]
    marks += _held_readers(message, held, {mark["user"] for mark in marks})
    marks = sorted(marks, key=lambda mark: mark["read_at"])[:READERS_CAP]
    names = dict(User.objects(id__in=[mark["user"] for mark in marks]).scalar("id", "username"))
    return [Reader(mark["user"], names[mark["user"]], mark["read_at"]) for mark in marks if mark["user"] in names]


def marker(room_id: ObjectId, user_id: ObjectId, membership: Membership) -> tuple[int | None, ObjectId | None]:
    """A member's marker, (position, message id): as stored, or further where this process holds a move of theirs
    that it has not written yet (`mark_sent`) and that they sent as this membership."""
    held = _sent.held(room_id, user_id)
    if held is not None and held[0] > max(membership.read_seq or 0, membership.joined_seq or 0):
        return held[0], held[1]
    return membership.read_seq, membership.read_message


def _held_readers(message, held, stored):
    """Readers of `message` by a move in `held` (`_SentMarkers.held_in`), as marks like the stored ones: members
    not among the `stored` readers who sent a message after it as this membership."""
    held = {
        user: (seq, at)
        for user, (seq, _, at) in held.items()
        if seq >= message["seq"] and user != message["user_id"] and user not in stored
    }
    if not held:
        return []
    # A move sent before they (re)joined is not theirs; the filter names the (room, user) key alone (the planner).
    members = Membership._get_collection().find({"room": message["room"], "user": {"$in": list(held)}}, _MARK)
    return [
        {"user": m["user"], "read_at": held[m["user"]][1]}
        for m in members
        if held[m["user"]][0] > (m.get("joined_seq") or 0)
    ]


def join_position(room_id: ObjectId) -> int:
    """Where a new member's unread counting starts: the room's position now."""
    return top_position(room_id)


def counts(user_id: ObjectId, room: Room, membership: Membership, top: int) -> tuple[int, int]:
    """(unread, mentions) of a member: others' live, undeleted messages after their marker up to the room's last
    position `top`, each capped."""
    low = max(marker(room.id, user_id, membership)[0] or 0, membership.joined_seq or 0, room.archived_seq)
    unread = mentions = 0
    first = None
    for doc in _scan(lambda lo, hi: (window(room.id, lo, hi),), low, top):
        first = first or doc["_id"]
        if _unread(doc, user_id):
            unread += 1
            mentions += _mentions(doc, user_id)
            if unread == UNREAD_CAP:  # more mentions may lie beyond what was read
                return unread, _mention_count(room.id, user_id, low, top, first)
    return unread, mentions


def last_message_at(room: Room, top: int) -> datetime | None:
    """The time of the room's newest live message (tombstones aside, none above position `top`), or None."""
    newest = message_scan.older(Message._get_collection(), room.id, top + 1, room.archived_seq, 1)
    return newest[0]["time_stamp"] if newest else None


def window(room_id: ObjectId, low: int, high: int) -> dict:
    """The query for a room's positions in (low, high]: a range of the (room, seq) index."""
    return {"room": room_id, "seq": {"$gt": low, "$lte": high}}


def mention_queries(room_id: ObjectId, user_id: ObjectId, since: ObjectId) -> tuple[dict, dict]:
    """The queries for messages from id `since` on that mention everyone in the room, and that name the user in any
    room: one mention key each (`utils/search_keys.py`), in the search index, which messages naming nobody stay out of.
    """
    ids = {"$gte": since}
    return {"search_keys": room_key(room_id), "_id": ids}, {"search_keys": user_key(user_id), "_id": ids}


def _scan(queries, low, high):
    """What `queries(lo, hi)` find in positions (lo, hi], window after window from `low` to `high`.

    Each window is WIDEN times the last, so a caller that stops once it has counted enough
    reads little more than it counts, however far `high` is.
    """
    collection, size = Message._get_collection(), UNREAD_CAP
    while low < high:
        top = min(high, low + size)
        for query in queries(low, top):
            yield from collection.find(query, _FIELDS)
        low, size = top, size * message_scan.WIDEN


def _mention_count(room_id, user_id, low, high, first):
    """Mentions of the user at positions (low, high], past the unread cap; `first` is the id at the first of them.

    Read by the mentions feed's keys, from ID_MARGIN before `first`: what few messages mention
    anyone, not every message after the marker (an index of mentions would cost every message
    stored, mention or not, an entry).
    """
    found = set()
    since = ObjectId.from_datetime(first.generation_time - ID_MARGIN)
    for query in mention_queries(room_id, user_id, since):
        for doc in Message._get_collection().find(query, {**_FIELDS, "room": 1}):
            if doc["room"] == room_id and low < doc["seq"] <= high and _unread(doc, user_id):
                found.add(doc["_id"])  # a message may both name the user and mention everyone
                if len(found) == UNREAD_CAP:
                    return len(found)
    return len(found)


def _unread(doc, user_id):
    return not (doc.get("gap") or doc.get("stub") or doc.get("deleted")) and doc["user_id"] != user_id


def _mentions(doc, user_id):
    return bool(doc.get("mentions_room")) or user_id in doc.get("mentions", ())


def _locate(message_id):
    """The room, position and author of a live or archived message (never a tombstone), or None."""
    for document in (Message, ArchivedMessage):
        doc = document._get_collection().find_one({"_id": message_id}, {"room": 1, "seq": 1, "user_id": 1, "gap": 1})
        if doc is not None:
            return None if doc.get("gap") else doc
    return None


def _membership(room_id, user_id):
    return Membership.objects(room=room_id, user=user_id).only(*MARKER_FIELDS).first()


def _forward(seq, message_id, at, *conditions):
    """The update that moves a membership's marker to `seq` only when that is further (and `conditions`, aggregation
    expressions, hold): one atomic write."""
    further = {"$and": [{"$lt": [{"$ifNull": ["$read_seq", -1]}, seq]}, *conditions]}
    return [
        {
            "$set": {
                "read_seq": {"$cond": [further, seq, "$read_seq"]},
                "read_message": {"$cond": [further, message_id, "$read_message"]},
                "read_at": {"$cond": [further, at, "$read_at"]},
            }
        }
    ]


def _sent_since_joining(seq):
    """The condition that the message at `seq` came after the membership began."""
    return {"$lt": [{"$ifNull": ["$joined_seq", -1]}, seq]}


def _move(room_id, user_id, seq, message_id):
    # Filtered on the unique (room, user) key alone: SecantusDB scans the collection for a filter
    # naming any other field, so the forward-only condition lives in the update.
    marker = {"room": room_id, "user": user_id}
    return Membership._get_collection().update_one(marker, _forward(seq, message_id, utcnow())).modified_count == 1


def _receipts_to_room(room_id):
    """Whether the room is small enough for everyone in it to get each member's read receipts."""
    most = current_app.config["READ_RECEIPTS_MAX_MEMBERS"]
    return Membership._get_collection().count_documents({"room": room_id}, limit=most + 1) <= most


class _SentMarkers:
    """The senders' marker moves not written yet: the furthest mark, (position, message id, time), per (room, sender),
    `pending` while they gather and in `writing` while their write is in flight."""

    def __init__(self):
        self.lock = threading.Lock()  # green under eventlet and gevent (monkey-patched)
        self.pending = {}
        self.writing = []
        self.flushing = False

    def add(self, message: MessageFields, seconds: float) -> None:
        key, mark = (message.room, message.user_id), (message.seq, message.id, message.time_stamp)
        with self.lock:
            _keep_furthest(self.pending, key, mark)
            start, self.flushing = not self.flushing, True
        if start:
            socketio.start_background_task(self._flush, seconds)

    def held(self, room_id, user_id):
        """The furthest mark of a member held here, or None."""
        key = (room_id, user_id)
        with self.lock:
            return max((batch[key] for batch in (self.pending, *self.writing) if key in batch), default=None)

    def held_in(self, room_id) -> dict:
        """The furthest mark held here of each member of a room that has one."""
        marks = {}
        with self.lock:
            for batch in (self.pending, *self.writing):
                for (room, user), mark in batch.items():
                    if room == room_id:
                        _keep_furthest(marks, user, mark)
        return marks

    def write_held(self) -> None:
        """Write everything held now, the batches in flight too (a stop's last write: their task ends with the
        process)."""
        with self.lock:
            for batch in self.writing:
                for key, mark in batch.items():
                    _keep_furthest(self.pending, key, mark)
        self._write()

    def _flush(self, seconds):
        """Write what gathers every `seconds`; end once a period brought nothing (the next send starts anew)."""
        while True:
            socketio.sleep(seconds)
            with self.lock:
                self.flushing = bool(self.pending)
            if not self.flushing:
                return
            self._write(pause=_PAUSE_SECONDS)

    def _write(self, pause=0.0):
        """Write what is pending, held in `writing` until written, `pause` seconds between two commands."""
        with self.lock:
            batch, self.pending = self.pending, {}
            self.writing.append(batch)
        # A move is the membership's that sent it: one that began later (a leave and a join meanwhile) is left alone.
        updates = [
            UpdateOne({"room": room, "user": user}, _forward(seq, message_id, at, _sent_since_joining(seq)))
            for (room, user), (seq, message_id, at) in batch.items()
        ]
        memberships = Membership._get_collection().with_options(write_concern=_UNJOURNALED)
        try:
            for start in range(0, len(updates), _MOVES_PER_WRITE):
                if start:
                    socketio.sleep(pause)
                memberships.bulk_write(updates[start : start + _MOVES_PER_WRITE], ordered=False)
        except Exception as error:  # the task must go on: a dead one would stop every later move of this process
            # The database out of reach is logged once for the outage (`utils.outage`): no traceback for it.
            unreached = isinstance(error, ConnectionFailure)
            log.warning(
                "%d senders' markers not moved: their next sends move them", len(updates), exc_info=not unreached
            )
        finally:
            with self.lock:
                self.writing.remove(batch)


def _keep_furthest(marks, key, mark):
    """Keep `mark` (position first) in `marks` under `key` unless a further one is there."""
    if key not in marks or marks[key] < mark:
        marks[key] = mark


_sent = _SentMarkers()


def mark_sent(message: MessageFields) -> None:
    """Move the sender's marker to a message they just stored, within SENT_MARKERS_MS and off the send's path."""
    _sent.add(message, current_app.config["SENT_MARKERS_MS"] / 1000)


def write_held_markers() -> None:
    """Write the senders' marker moves this process holds (at a stop)."""
    _sent.write_held()
