"""Appending messages to their rooms: group commit, per-room positions, journaled writes.

Sends that arrive while an insert is in flight are stored together in the next one: one
caller at a time writes, takes every message waiting, allocates their positions (one update
command, an `$inc` for each room in the batch; none where this process is the only writer and
holds them in memory, `HeldPositions`), stores them with one unordered, journaled
`insert_many`, wakes their callers and hands the lead to the first one that arrived
meanwhile. Each caller returns only once its own message is stored (or raises its own
error), so an ack always follows a write that survives a crash of the database. What follows
a store (the broadcast) is made by the writer, in position order, before the next batch's:
the callers' threads wake in no set order, and a client that resumes after the last message
it got would skip the ones broadcast after it but stored before.

A position is handed out before its message is stored, so a reader may briefly see a later
position stored before an earlier one (another process, or this one's next batch). A writer
that fails fills its positions with tombstones at once; one that died is found by readers
(`model/message_scan.py`), which fill positions left empty for GAP_SECONDS. Whoever loses the
race for a position to a tombstone takes a new one, so nothing is lost and nothing skipped.
"""

import logging
import threading
import time
from contextlib import suppress
from datetime import timedelta

from bson import ObjectId
from mongoengine import NotUniqueError
from pymongo import UpdateOne, WriteConcern
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from model.batches import find_in
from model.message import Message, stored_form
from model.migrations import once
from model.room import Room
from utils.outage import log_failure
from utils.timefmt import utcnow

DUPLICATE_KEY = 11000
# An allocation need not be journaled: the journal is written in order, so the journaled
# insert that follows carries it, and a counter found behind its room's messages is repaired.
_ALLOCATE = WriteConcern(w=1, j=False)
# Reads of a room's counter a batch makes, and inserts that meet positions taken, before it gives up: each miss is
# another writer's batch stored (two processes holding positions in memory, until they step down, miss often).
_CONTENDED = 100
# A batch slower than this, from its first allocation to its last insert, checks its rooms' archive watermarks.
_STALLED = 1.0
# Each room's position counter, `{_id: room id, seq: the last position handed out}`, in a collection of its own:
# SecantusDB rewrites every index entry of a document it updates, so the counter's update, once a batch,
# costs half what it did in the rooms collection with its three indexes (docs/PERFORMANCE.md).
COUNTERS = "room_counters"
log = logging.getLogger(__name__)
# Rooms deleted lately (`forget_room`): room id -> when this process was told. A batch in flight at a deletion
# ends within seconds; five minutes is a wide margin.
_deleted = {}
DELETED_KEPT_SECONDS = 300


class RoomGone(Exception):
    """The room was deleted between the permission check and the write."""


class _Waiter:
    def __init__(self, message, announce=None):
        self.message = message
        self.announce = announce
        self.done = threading.Event()  # green under eventlet and gevent (monkey-patched)
        self.lead = False
        self.error = self.traceback = None
        self.tombstone = False  # its send failed, and a tombstone holds its position

    def fail(self, error):
        """Fail this send with `error`, which the batch's other sends may share: each raises it from where it was
        raised first (a raise adds the raiser's frames to the error's traceback, and the sends of one failed batch
        would each log the frames of every send before them)."""
        self.error, self.traceback = error, error.__traceback__


def _announce(batch, skipped):
    """Make the announcements of a stored batch, in position order (a message that lost its position to a tombstone
    took a later one): each message's, and `skipped(room, position)` for a position a failed send left to a
    tombstone. One that fails is logged: its message is stored, and the ack says so."""
    told = (w for w in batch if (w.error is None and w.announce) or (w.tombstone and skipped))
    for waiter in sorted(told, key=lambda w: w.message.seq):
        try:
            if waiter.error is None:
                waiter.announce(waiter.message)
            else:
                skipped(waiter.message.room, waiter.message.seq)
        except Exception:
            log.exception("position %s of room %s stored, not announced", waiter.message.seq, waiter.message.room)


class MessageLog:
    """Store messages in their rooms' order, batching the ones that arrive together."""

    def __init__(self, skipped=None):
        """`skipped(room, position)`: announced, in order with the messages, for each position a failed send left to
        a tombstone."""
        self.skipped = skipped
        self.lock = threading.Lock()
        # Held from a batch's store until its announcements are made: the next batch's wait for them.
        self.announcing = threading.Lock()
        self.pending = []
        self.writing = False

    def append(self, message, announce=None):
        """Give `message` its id, position and time and store it; NotUniqueError for a reused clientId.

        `announce(message)`, when given, is called once the message is stored, before this returns: this process's
        announcements are made one at a time, in each room's order."""
        message.id = message.id or ObjectId()
        waiter = _Waiter(message, announce)
        with self.lock:
            self.pending.append(waiter)
            lead, self.writing = not self.writing, True
        if lead:
            # Let the sends that arrived with this one reach the queue first (under eventlet, the other
            # sockets' frames of the same poll): they are then stored in this write, not the next.
            time.sleep(0)
        else:
            waiter.done.wait()
        if lead or waiter.lead:
            self._write_pending()
        if waiter.error is not None:
            raise waiter.error.with_traceback(waiter.traceback)

    def _write_pending(self):
        with self.lock:
            batch, self.pending = self.pending, []
        stored = False
        try:
            self._write(batch)
            self.announcing.acquire()  # before the next batch is stored: its announcements wait for these
            stored = True
        except BaseException as error:
            # Whatever the batch stored, no send of it may be acknowledged as stored now (a retry with its clientId
            # finds the message if it was): each raises the error, not only the send that led the write.
            for waiter in batch:
                if waiter.error is None:
                    waiter.fail(error)
            raise
        finally:
            with self.lock:
                if self.pending:
                    self.pending[0].lead = True
                    self.pending[0].done.set()
                else:
                    self.writing = False
            if stored:
                try:
                    _announce(batch, self.skipped)
                finally:
                    self.announcing.release()
            for waiter in batch:
                waiter.done.set()
        if _deleted:
            _drop_deleted([waiter.message for waiter in batch if waiter.error is None])

    def _write(self, batch):
        started = time.monotonic()
        self._store(batch)
        if time.monotonic() - started > _STALLED:
            self._store_again_above_watermarks(batch)

    def _store_again_above_watermarks(self, batch):
        """A batch that took long (the process stalled, the database hung) may have met its rooms archived meanwhile:
        past positions it held whose messages the archive took out of the live collection, or past tombstones of
        its own positions that the archive deleted. What it stored at or below its room's archive watermark no
        reader would see: it is stored again, at new positions."""
        stored = [waiter for waiter in batch if waiter.error is None]
        if not stored:
            return
        try:
            watermarks = _watermarks(Message._get_collection().database, {waiter.message.room for waiter in stored})
            late = [waiter for waiter in stored if waiter.message.seq <= watermarks[waiter.message.room]]
            if late:
                Message._get_collection().delete_many({"_id": {"$in": [waiter.message.id for waiter in late]}})
                log.warning("%d messages stored below their room's archive watermark: stored again", len(late))
                for room in {waiter.message.room for waiter in late}:
                    repair_counter(room)  # past the watermark, in memory too
                self._store(late)
        except PyMongoError:
            log_failure(log, "a slow batch's positions were not checked against the archive")

    def _store(self, batch):
        todo = batch
        for _attempt in range(_CONTENDED):
            todo = self._allocate(todo)
            if not todo:
                return
            todo = self._insert(todo)
            if not todo:
                return
            for room in {waiter.message.room for waiter in todo}:
                repair_counter(room)
        for waiter in todo:
            waiter.fail(RuntimeError("no free position in the room"))

    def _allocate(self, waiters):
        """Number the waiters' messages per room, in arrival order; return those that can be written."""
        by_room = {}
        for waiter in waiters:
            by_room.setdefault(waiter.message.room, []).append(waiter)
        lasts = take_positions_of({room: len(group) for room, group in by_room.items()})
        now = utcnow()
        ready = []
        for room, group in by_room.items():
            last = lasts[room]
            if isinstance(last, Exception):
                _fail(group, last)
                continue
            if last is None:
                _fail(group, RoomGone(str(room)))
                continue
            for seq, waiter in enumerate(group, start=last - len(group) + 1):
                waiter.message.seq, waiter.message.time_stamp = seq, now
            ready += group
        return ready

    def _insert(self, waiters):
        """Store the messages; each failure stays its own caller's. Return those whose position was taken."""
        collection = Message._get_collection()
        try:
            collection.insert_many([stored_form(waiter.message) for waiter in waiters], ordered=False)
            return []
        except BulkWriteError as error:
            failures = {failure["index"]: failure for failure in error.details.get("writeErrors", [])}
        except PyMongoError as error:  # the database is out of reach: readers fill the positions later
            _fail(waiters, error)
            _give_back(waiters)
            return []
        except Exception as error:  # a document the driver cannot encode: find whose
            return self._insert_alone(waiters, error)
        retry = []
        for index, failure in failures.items():
            waiter, key = waiters[index], _duplicate_key(failure)
            if key == "_id":
                continue  # stored by an earlier attempt whose answer was lost
            if key == "seq":
                retry.append(waiter)
                continue
            waiter.fail((NotUniqueError if key else RuntimeError)(failure.get("errmsg", "write failed")))
            waiter.tombstone = fill_gaps(waiter.message.room, [waiter.message.seq])
        return retry

    def _insert_alone(self, waiters, error):
        """The batch failed as a whole: try each message alone, so one bad message fails only its sender."""
        if len(waiters) == 1:
            waiters[0].fail(error)
            waiters[0].tombstone = fill_gaps(waiters[0].message.room, [waiters[0].message.seq])
            return []
        retry = []
        for waiter in waiters:
            retry += self._insert([waiter])
        return retry


def forget_room(room):
    """A room was deleted, by this process or another (every process is told: `services/live.evict_here`): delete
    the messages a batch of this process stored in it since the deletion's own sweep, and from now on those a batch
    in flight stores (`_drop_deleted`).

    The room is remembered before the sweep, and a batch looks after its insert: whichever comes last sees the
    other, so no message outlives its room, at no cost to a send while no room is being deleted.
    """
    now = time.monotonic()
    for old in [old for old, at in _deleted.items() if now - at > DELETED_KEPT_SECONDS]:
        del _deleted[old]
    _deleted[room] = now
    Message._get_collection().delete_many({"room": room})


def _drop_deleted(stored):
    gone = [message.id for message in stored if message.room in _deleted]
    if gone:
        try:
            Message._get_collection().delete_many({"_id": {"$in": gone}})
        except PyMongoError:
            log.warning("%d messages stored as their room was deleted are left", len(gone), exc_info=True)
            return
        log.info("%d messages stored as their room was deleted: deleted with it", len(gone))


def take_positions(room, count, db=None):
    """Reserve the next `count` positions of a room (its counter in `db`, by default the messages' database);
    return the last of them, or None when the room is gone."""
    last = take_positions_of({room: count}, db)[room]
    if isinstance(last, Exception):
        raise last
    return last


def take_positions_of(counts, db=None):
    """`take_positions` for several rooms, `{room: count}`: `{room: the last position, None when the room is gone,
    or the error that stopped it}`.

    A counter is moved only if it still holds the value this process last saw (none: read it
    first), else read again: so a room only this process writes to costs one update a batch, and
    two processes writing to one room never take the same position. A batch's rooms are read in
    one command and moved in one (a batch of a hundred rooms waited for a hundred round trips in
    turn, docs/PERFORMANCE.md). Not findAndModify: SecantusDB spends time on that in proportion
    to the collection (13 ms a call among 3000 rooms, 47 ms among 10,000), on a read or an
    update by `_id` about 0.2 ms however many rooms.
    """
    if db is None and (held := _holding()) is not None:
        return held.take(counts)
    counters = _counters(db).with_options(write_concern=_ALLOCATE)
    lasts, todo = {}, dict(counts)
    seen = {room: _last_seen.pop(room) for room in counts if room in _last_seen}
    try:
        for _attempt in range(_CONTENDED):
            unread = [room for room in todo if room not in seen]
            marked = []
            for counter in counters.find({"_id": {"$in": unread}}) if unread else ():
                seen[counter["_id"]] = counter["seq"]
                if "held" in counter:
                    marked.append(counter["_id"])
            if marked:
                seen |= _settle(counters, marked, seen)
            for room in unread:
                if room not in seen and not _start_counter(room, _counters(db)):
                    lasts[room] = None  # gone; a counter just started is read next time round
                    del todo[room]
            moved = _move(counters, {room: (seen[room], todo[room]) for room in todo if room in seen})
            for room, last in moved.items():
                lasts[room] = _remember(room, last)
                del todo[room]
            if not todo:
                return lasts
            seen = {}
        error = RuntimeError("the room's position counter kept moving")
    except PyMongoError as failure:
        error = failure
    return lasts | dict.fromkeys(todo, error)


def _settle(counters, rooms, seen):
    """Counters marked `held` by a process that handed positions out from memory (gone now, or about to step
    down: positions are taken here from the counters): moved past what their rooms hold, and unmarked once no
    process says it holds positions. `{room: the value each holds}`."""
    tops = _tops_stored(counters.database, rooms)
    unmark = {} if _live_holders(counters.database) else {"$unset": {"held": ""}}  # a live one may hold them
    counters.bulk_write(
        [UpdateOne({"_id": room}, {"$max": {"seq": top}, **unmark}) for room, top in tops.items()], ordered=False
    )
    return {room: max(seen[room], top) for room, top in tops.items()}


def _move(counters, moves):
    """Move counters, `{room: (the value this process saw, count)}`, in one command: `{room: last}` of those that
    still held the value seen; the others were moved by another process meanwhile.

    The answer to an update command gives only how many statements matched, not which. When
    some did not, the counters are read back: each move leaves its batch's mark (`by`), so a
    counter that shows this batch's mark is this batch's. One this batch moved that another
    moved on again before the read no longer shows it; when the count says some are missing
    like that, the positions of every counter not found marked are filled with tombstones, so
    that whichever writer holds them (this one or another) numbers its messages again.
    """
    if not moves:
        return {}
    mark = ObjectId()
    statements = [
        UpdateOne({"_id": room, "seq": seen}, {"$inc": {"seq": count}, "$set": {"by": mark}})
        for room, (seen, count) in moves.items()
    ]
    done = counters.bulk_write(statements, ordered=False).modified_count
    lasts = {room: seen + count for room, (seen, count) in moves.items()}
    if done == len(statements):
        return lasts
    read = counters.find({"_id": {"$in": list(moves)}}, {"by": 1})
    marked = {counter["_id"] for counter in read if counter.get("by") == mark}
    if done > len(marked):
        for room, (seen, count) in moves.items():
            if room not in marked:
                fill_gaps(room, range(seen + 1, seen + count + 1))
                repair_counter(room)  # past the tombstones, so that the next batch does not meet them
    return {room: lasts[room] for room in marked}


def _remember(room, seq):
    if len(_last_seen) >= _LAST_SEEN_MAX:
        _last_seen.clear()
    _last_seen[room] = seq
    return seq


def open_counter(room):
    """Give a room just created its counter, at position 0: its first batch then reads it with the batch's other
    rooms, not alone from the rooms and messages collections."""
    held = _holding()
    if held is None:
        _counters().insert_one({"_id": room, "seq": 0})
    else:
        _counters().insert_one({"_id": room, "seq": 0, "held": held.me})
        held.last[room] = 0


def _start_counter(room, counters):
    """Give a room its counter, after what it holds (a new room: nothing); False when the room is gone.

    Two processes may do so at once: the `$max` of an upsert, by `_id`, keeps one counter either way.
    """
    db = counters.database
    found = db[Room._get_collection_name()].find_one({"_id": room}, {"archived_seq": 1})
    if found is None:
        return False
    with suppress(DuplicateKeyError):  # the other's upsert came first: its counter is there
        counters.update_one({"_id": room}, {"$max": {"seq": _top_stored(db, room, found)}}, upsert=True)
    return True


def _top_stored(db, room, found):
    """The highest position a room's messages hold (archived ones below its watermark)."""
    return max(_top_live(db, room), found.get("archived_seq", 0))


def _tops_stored(db, rooms):
    """`_top_stored` of each of `rooms` (the archive deletes the live messages it moved, but for stubs: its watermark
    is a floor too)."""
    watermarks = _watermarks(db, rooms)
    return {room: max(_top_live(db, room), watermarks[room]) for room in rooms}


def _watermarks(db, rooms):
    """Each room's archive watermark, `archived_seq` (0 for a room gone), in one read a chunk of rooms (`find_in`)."""
    found = find_in(db[Room._get_collection_name()], "_id", rooms, {"archived_seq": 1})
    return dict.fromkeys(rooms, 0) | {room["_id"]: room.get("archived_seq", 0) for room in found}


def _top_live(db, room):
    """The highest position of a room's live messages (0: none)."""
    top = db[Message._get_collection_name()].find_one({"room": room}, {"seq": 1}, sort=[("seq", -1)])
    return (top or {}).get("seq") or 0


def top_position(room, db=None):
    """The last position handed out in a room: no message of it is stored above it."""
    return top_positions([room], db)[room]


def top_positions(rooms, db=None):
    """`top_position` of each of `rooms`, in one read a chunk of rooms (`find_in`; and one more a room whose positions
    a process holds).

    A counter marked `held` (`HeldPositions`) may be behind its room's messages: here, outside the process
    that holds it, the highest stored position is read too."""
    counters = _counters(db)
    found = {counter["_id"]: counter for counter in find_in(counters, "_id", rooms)}
    if db is None and (held := _holding()) is not None:
        return held.tops(rooms, found)
    tops = {room: found[room]["seq"] if room in found else 0 for room in rooms}
    marked = [room for room, counter in found.items() if "held" in counter]
    for room, top in (_tops_stored(counters.database, marked) if marked else {}).items():
        tops[room] = max(tops[room], top)
    return tops


def delete_counter(room):
    """Forget a deleted room's counter."""
    if _held is not None:
        _held.forget(room)
    _counters().delete_one({"_id": room})


def _counters(db=None):
    return (Message._get_collection().database if db is None else db)[COUNTERS]


# Each room's counter as this process last moved it (a bounded memory: forgotten ones are read again).
_last_seen = {}
_LAST_SEEN_MAX = 100_000


class HeldPositions:
    """Positions handed out from this process's memory, where it is the only writer of its database's messages
    (no REDIS_URL: one serving process). A batch then costs no command but its insert, where the counters'
    update was a round trip before it; each room's counter follows within a second (`write`), for readers in
    other processes (the archive job's ceiling), and this process's readers take what it handed out since.

    A room is claimed at its first send or read here: its counter is marked `held` by this process, a write the
    journaled insert after it carries. A counter that another process marked may be behind what that process
    stored before it stopped, so a claim reads the room's highest stored position with it. The unique
    `(room, seq)` index still decides: a writer this process does not know of (a tool, a second process started
    by mistake) makes an insert fail on a position, and the batch takes it again past the highest stored.
    """

    def __init__(self):
        self.me = ObjectId()
        self.last = {}  # room -> the last position handed out here
        self.unwritten = {}  # room -> the same, where the counter does not hold it yet
        self.confirmed = time.monotonic()  # when this process last found itself the only holder

    def fresh(self):
        """Whether this process found itself the only holder lately: one stalled past HOLDER_SECONDS may have been
        taken for gone, and another may have held its rooms (and the archive moved what that one stored)."""
        return time.monotonic() - self.confirmed < HOLDER_SECONDS - 1

    def take(self, counts):
        """`take_positions_of` from memory: `{room: last}`, None for a room gone, the error that stopped a claim.

        A claim waits for the database, and meanwhile a room held may be forgotten (deleted, or past the memory's
        bound): such a room is claimed again, until each has its answer."""
        lasts, todo = {}, list(counts)
        while todo:
            lasts |= self.claim([room for room in todo if room not in self.last])
            for room in todo:
                if room in self.last and room not in lasts:
                    lasts[room] = self.last[room] = self.unwritten[room] = self.last[room] + counts[room]
            todo = [room for room in todo if room not in lasts]
        return lasts

    def marked_by_another(self, counter):
        """Whether a counter is marked `held` by another process (or this one before it last stopped holding)."""
        return counter.get("held", self.me) != self.me

    def give_back(self, room, first, last):
        """Positions `first`..`last` of a room were handed out to a batch whose insert failed: the next batch takes
        them, unless more were handed out since (a failed insert left no hole for readers to wait at)."""
        if self.last.get(room) == last:
            self.last[room] = first - 1
            if self.unwritten.get(room) == last:
                self.unwritten[room] = first - 1

    def tops(self, rooms, counters):
        """`top_positions`, given the rooms' counters as read: what this process handed out where it is ahead."""
        stale = [room for room in rooms if room not in self.last and self.marked_by_another(counters.get(room, {}))]
        if stale:
            self.claim(stale)
        return {room: max(counters[room]["seq"] if room in counters else 0, self.last.get(room, 0)) for room in rooms}

    def claim(self, rooms):
        """Hold the rooms' positions here from what their counters and messages say; `{room: None (gone) or the
        error}` for each room not claimed."""
        if not rooms:
            return {}
        counters = _counters()
        try:
            found = {counter["_id"]: counter for counter in counters.find({"_id": {"$in": rooms}})}
            started = [room for room in rooms if room not in found and _start_counter(room, counters)]
            found |= (
                {counter["_id"]: counter for counter in counters.find({"_id": {"$in": started}})} if started else {}
            )
            stale = [room for room, counter in found.items() if self.marked_by_another(counter)]
            stored = _tops_stored(counters.database, stale) if stale else {}
            tops = {room: max(counter["seq"], stored.get(room, 0)) for room, counter in found.items()}
            if tops:
                marks = [
                    UpdateOne({"_id": room}, {"$set": {"held": self.me}, "$max": {"seq": top}})
                    for room, top in tops.items()
                ]
                counters.with_options(write_concern=_ALLOCATE).bulk_write(marks, ordered=False)
        except PyMongoError as error:
            return dict.fromkeys(rooms, error)
        if len(self.last) >= _LAST_SEEN_MAX:  # forget what the counters hold already
            self.last = {room: last for room, last in self.last.items() if room in self.unwritten}
        for room, top in tops.items():  # a claim of the same room that ended first may have handed out more
            self.last[room] = max(self.last.get(room, 0), top)
        return {room: None for room in rooms if room not in tops}

    def write(self):
        """Bring the counters up to what was handed out here. A room stays to write while this runs (so that the
        memory's bound never forgets it), and when the database raised."""
        todo = dict(self.unwritten)
        if not todo:
            return
        counters = _counters()
        moves = [UpdateOne({"_id": room}, {"$max": {"seq": last}}) for room, last in todo.items()]
        matched = counters.with_options(write_concern=_ALLOCATE).bulk_write(moves, ordered=False).matched_count
        for room, last in todo.items():
            if self.unwritten.get(room) == last:  # handed out no further meanwhile
                del self.unwritten[room]
        if matched < len(moves):  # a counter is gone: its room deleted, or the database emptied under this process
            kept = {counter["_id"] for counter in counters.find({"_id": {"$in": list(todo)}}, {"_id": 1})}
            gone = todo.keys() - kept
            standing = set(Room.objects(id__in=list(gone)).distinct("id"))
            for room in gone:
                self.forget(room)  # its next send claims it again, from what is stored
                if room not in standing:  # deleted by another process, which could not tell this one
                    forget_room(room)

    def forget(self, room):
        self.last.pop(room, None)
        self.unwritten.pop(room, None)


_held = None  # the HeldPositions handing out this process's positions, while it does
# The serving processes that may hold positions (no REDIS_URL) each say so every second here, `{_id, beat}`: one
# holds them only while no other has said so for HOLDER_SECONDS, so two started by mistake on one database both
# take them from the counters within a second (or at start-up), and one alone after a crash holds them again.
HOLDERS = "position_holders"
HOLDER_SECONDS = 3
_candidate = None  # this process's id among them, once `hold_positions` made it one


def hold_positions():
    """Make this process one that hands out positions from its memory whenever it is the only one of its database
    (`write_held_positions` then checks every second)."""
    global _candidate
    _candidate = ObjectId()
    gone = utcnow() - timedelta(seconds=HOLDER_SECONDS)
    _counters().database[HOLDERS].delete_many({"beat": {"$lt": gone}})  # killed ones said nothing when they went
    write_held_positions()
    if _held is None:
        log.warning(
            "another serving process without REDIS_URL (or this one's last run, if it was killed) said within %d s "
            "that it uses this database: positions are taken from the counters until it is gone",
            HOLDER_SECONDS,
        )


def write_held_positions():
    """Bring the counters up to the positions handed out from memory; hold positions while this process is the only
    one that may, or stop holding them (after a last write) when another appears."""
    global _held
    candidate = _candidate
    if candidate is None:
        return
    if _held is not None:
        _held.write()
    holders, now, confirmed = _counters().database[HOLDERS], utcnow(), time.monotonic()
    holders.update_one({"_id": candidate}, {"$set": {"beat": now}}, upsert=True)
    others = {"_id": {"$ne": candidate}, "beat": {"$gt": now - timedelta(seconds=HOLDER_SECONDS)}}
    alone = not holders.count_documents(others, limit=1)
    if _candidate is not candidate:  # released while this waited for the database: take back what it said
        holders.delete_one({"_id": candidate})
        return
    if alone:
        if _held is None or not _held.fresh():
            # A new mark: the counters this process marked before are settled from what is stored, as another's.
            _held = HeldPositions()
        _held.confirmed = confirmed
    elif _held is not None:
        stopping, _held = _held, None
        log.warning(
            "another serving process without REDIS_URL uses this database: positions are taken from the counters "
            "(several processes need REDIS_URL to share broadcasts)"
        )
        stopping.write()  # what batches in flight still store at positions it handed out lies under its mark


def _holding():
    """The HeldPositions to hand out positions from, unless this process has not lately found itself the only
    holder (then from the counters, until its next beat)."""
    return _held if _held is not None and _held.fresh() else None


def _live_holders(db):
    """Whether a process said within HOLDER_SECONDS that it holds positions in this database."""
    since = utcnow() - timedelta(seconds=HOLDER_SECONDS)
    return bool(db[HOLDERS].count_documents({"beat": {"$gt": since}}, limit=1))


def release_positions():
    """At a stop, once no request is in flight: write the counters, and say this process holds no positions any
    more (the next one need not wait HOLDER_SECONDS to hold them)."""
    global _held, _candidate
    if _candidate is None:
        return
    if _held is not None:
        _held.write()
        _held = None
    _counters().database[HOLDERS].delete_one({"_id": _candidate})
    _candidate = None  # the counters' loop's next call, before the process ends, would say it again


def _give_back(waiters):
    """A batch's insert failed as a whole: the positions memory handed out for it go to the next batch."""
    if _held is None:
        return
    positions = {}
    for waiter in waiters:
        positions.setdefault(waiter.message.room, []).append(waiter.message.seq)
    for room, taken in positions.items():
        _held.give_back(room, min(taken), max(taken))


def _fail(waiters, error):
    for waiter in waiters:
        waiter.fail(error)


def _duplicate_key(failure):
    """Which unique key a write error broke: "_id", "seq", "client_id", or None when it is no duplicate."""
    if failure.get("code") != DUPLICATE_KEY:
        return None
    pattern = failure.get("keyPattern") or {}
    text = failure.get("errmsg", "")
    if "seq" in pattern or "seq_1" in text:
        return "seq"
    if "client_id" in pattern or "client_id" in text:
        return "client_id"
    return "_id"


def fill_gaps(room, seqs):
    """Mark positions as never to be filled, in one write; False when a message took one of them first."""
    now = utcnow()
    try:
        tombstones = [{"_id": ObjectId(), "room": room, "seq": seq, "gap": True, "time_stamp": now} for seq in seqs]
        Message._get_collection().insert_many(tombstones, ordered=False)
    except BulkWriteError as error:
        return not any(failure.get("code") == DUPLICATE_KEY for failure in error.details.get("writeErrors", ()))
    except PyMongoError:
        pass  # left empty: readers fill them once they are old enough
    return True


def repair_counter(room):
    """Move a room's counter past its highest stored position (after a crash lost an allocation, or another writer
    stored at a position this process's memory handed out)."""
    top = _tops_stored(Message._get_collection().database, [room])[room]
    if _held is not None and room in _held.last:
        _held.last[room] = max(_held.last[room], top)
    _counters().update_one({"_id": room}, {"$max": {"seq": top}})


@once("room-counters")
def move_counters(db):
    """Move the counters rooms held before they had a collection of their own.

    Each is copied (`$max`, so a run cut short and run again changes nothing) before it leaves its room.
    """
    for room in db.rooms.find({"seq": {"$exists": True}}, {"seq": 1}):
        _counters(db).update_one({"_id": room["_id"]}, {"$max": {"seq": room["seq"]}}, upsert=True)
        db.rooms.update_one({"_id": room["_id"]}, {"$unset": {"seq": ""}})


@once("message-positions")
def number_old_messages(db):
    """Give positions, in id order, to messages stored before messages had them."""
    for name in ("archived_messages", "messages"):  # archived ones come first in every room
        collection = db[name]
        for room in collection.distinct("room", {"seq": {"$exists": False}}):
            for doc in collection.find({"room": room, "seq": {"$exists": False}}, {"_id": 1}).sort("_id", 1):
                seq = take_positions(room, 1, db) or 0
                collection.update_one({"_id": doc["_id"]}, {"$set": {"seq": seq}})
            if name == "archived_messages":
                db.rooms.update_one({"_id": room}, {"$max": {"archived_seq": top_position(room, db)}})
    db.rooms.update_many({"archived_before": {"$exists": True}}, {"$unset": {"archived_before": ""}})
