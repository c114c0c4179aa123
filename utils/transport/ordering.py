"""A room's chat messages, and a message's states, reach this process's sockets in the order the database took them,
whichever process stored or changed them.

With several processes, a message stored through another one comes through Redis, and can
arrive after a later one stored here and broadcast at once. A client that resumes from the
last message it got (`sync` after it) would skip the earlier one. So, for each room this
process has sockets in, a message (`Stamped`: the broadcast's payload, stamped with its
position) whose position is past the next one expected is held until the positions before
it arrive. A room is followed from its first socket's join here (`join`: the room's settled
position then, read by the join; what arrives during that read waits for it, and of first joins
reading at once the lowest position wins), until a message finds none of its sockets left: never
from whatever message happens to come first (a retry's broadcast of an old one, say).

A hold that lasts `hold_seconds` asks the database (`settle`, given by the services) for
the positions from the next expected one to the last one held: settled, in order, each with
its message's id and what to deliver (a message stored whose broadcast has not come, or that
never will: its process died, or Redis hangs), or None (a tombstone, a message deleted since:
its broadcast, if it comes, is dropped). It stops before a position still being written, as
history readers do (model/message_scan.py), so a writer that died holds the room back until
GAP_SECONDS, then its position is filled and the room goes on. A send that failed after
taking its position (a retry of a stored clientId) leaves a tombstone there, which its
writer announces in order with the messages (`hub.SKIPPED`): no process waits for it. A
message that comes after its position was given up, or again (a retry broadcasts the
original), is delivered at once: the managers' `hub.accept` drops a second delivery.

When the database cannot answer, a room has not moved for `max_wait` seconds while holding
(the room deleted meanwhile, say), or it holds more than `max_held`, what is held is delivered
in order at once: nothing is held longer than the database can say why. The next position of
at most `max_keys` rooms is kept (and the version of as many messages); the one quiet longest
is forgotten, and followed again from its next first join.

A changed message (`message_updated`) is stamped with its version, which each change of it
increments in the same write: a state older than one delivered here already is dropped (a
client keeps the last one it got), and so is any state after its `message_deleted`. A
member's `read_receipt` is stamped with the position their marker moved to, the same way.
The states of a message still held, or not come yet (changed through this process before its
broadcast from another one came: a state says its message's position), wait behind it; a held
message the database says was deleted is dropped, its states delivered. What comes late below
the position a room's first socket here joined at is history to every socket here: not
delivered.
"""

import logging
import threading
import time

from utils import metrics
from utils.outage import log_failure

log = logging.getLogger("chat.transport")


# The stamp of a message's deletion: later than every version of it.
DELETED = 2**53
# A room held without moving is read at most this many times `hold_seconds` apart.
SLOWEST = 8


class Stamped(dict):
    """A broadcast's payload with its stamp (sent beside it to the other processes, never to clients): a new
    message's position in its room, a changed message's version or DELETED, a read receipt's position; and a state's
    `after`, the position of the message it follows."""

    __slots__ = ("after", "stamp")

    def __init__(self, payload, stamp, after=None):
        super().__init__(payload)
        self.stamp, self.after = stamp, after


class _Held:
    """A message held for an earlier one: its delivery (None: only its states have come, it has not), then its states
    that came meanwhile (key, stamp, delivery)."""

    __slots__ = ("deliver", "message_id", "states")

    def __init__(self, message_id):
        self.deliver, self.message_id, self.states = None, message_id, []


class RoomOrder:
    """Deliveries of each room's messages in position order, and of each message's states in its versions' order
    (see the module)."""

    def __init__(
        self, server, listened, settle, deliver_stored, hold_seconds, max_wait, max_held=10_000, max_keys=100_000
    ):
        self.server = server
        self.listened = listened  # room -> whether this process has sockets in it
        self.settle = settle  # (room, first, last) -> [(position, message id, payload or None)], from the services
        # (room, message id, payload or None): a position read from the database, delivered to this process's sockets
        # when it has a payload; its broadcast, if it comes, is then dropped
        self.deliver_stored = deliver_stored
        self.hold_seconds, self.max_wait = hold_seconds, max_wait
        self.max_held, self.max_keys = max_held, max_keys
        self.lock = threading.Lock()  # deliveries are made holding it, in order
        self.next = {}  # room -> the next position to deliver, for rooms this process has sockets in
        # room -> the position its first socket here joined at: what comes below it, late, is history to them all
        self.floors = {}
        self.held = {}  # room -> {position: _Held}, for rooms waiting for an earlier position
        # room -> [its first joins still reading where it stands, the lowest position one of them read], while any is
        self.starting = {}
        self.held_ids = {}  # message id -> (room, position) of the held messages
        self.versions = {}  # a message's id, or a read marker's key -> the latest stamp delivered of its states

    def join(self, room, settled, enter):
        """Put a socket in `room` (`enter()`). The room's first socket here asks `settled()` (a read of the database)
        the position it joins at: what arrives meanwhile waits for the answer, and the room is followed from the lowest
        position its first joins read. A join that fails to read enters nothing, and raises."""
        with self.lock:
            starting = self.starting.get(room)
            if starting is None and self.listened(room):
                enter()
                return
            if starting is None:
                starting = self.starting[room] = [0, None]
            starting[0] += 1
        position = None
        try:
            position = settled()
        finally:
            with self.lock:
                starting[0] -= 1
                if position is not None:
                    enter()
                    starting[1] = position if starting[1] is None else min(starting[1], position)
                if not starting[0]:
                    del self.starting[room]
                    self._start(room, starting[1])

    def _start(self, room, position):
        """The room's first sockets here joined at `position` (None: none could read it): from there on, its messages
        are delivered in order; what comes below it (a broadcast late) is not delivered."""
        if position is None:
            if room not in self.next and room in self.held:  # what arrived while it read, to no socket: it goes
                self._release(room)
                del self.next[room]
            return
        _keep(self.floors, room, position, self.max_keys)
        held = self.held.get(room, {})
        for below in sorted(p for p in held if p < position):  # left held by sockets gone since, or late
            self._drop(room, below)
        self.next[room] = max(self.next.get(room, position), position)
        self._advance(room, self.next[room])

    def offer(self, room, position, deliver, message_id=None):
        """Deliver (call `deliver()`) now, or once every earlier position of the room is delivered or given up."""
        with self.lock:
            if room in self.starting:  # a first join reads where the room stands: this waits for its answer
                self._hold(room, position, message_id, deliver)
                return
            expected = self.next.get(room)
            if expected is None or position < expected:
                if position < self.floors.get(room, 0):
                    self.deliver_stored(room, message_id, None)  # history to every socket here: counted delivered
                else:
                    _run(deliver)
                return
            if room not in self.held:
                if not self.listened(room):  # its last socket here left: it starts again at the next first join
                    del self.next[room]
                    self.floors.pop(room, None)
                    _run(deliver)
                    return
                if position == expected:
                    _run(deliver)
                    self._advance(room, position + 1)
                    return
            self._hold(room, position, message_id, deliver)
            if position == expected:
                self._advance(room, position)
            elif len(self.held[room]) > self.max_held:
                log.warning("room %s held %d messages for an earlier one: delivered now", room, len(self.held[room]))
                self._release(room)

    def _hold(self, room, position, message_id, deliver=None):
        """The room's entry of the message at `position`, held (a new one when neither it nor its states came yet);
        `deliver`: the message has come."""
        held = self.held.get(room)
        if held is None:
            held = self.held[room] = {}
            self.server.start_background_task(self._wait, room, held)
        entry = held.get(position)
        if entry is None:
            entry = held[position] = _Held(message_id)
            if message_id is not None:
                self.held_ids[message_id] = (room, position)
        if deliver is not None:
            entry.deliver = deliver
            metrics.MESSAGES_HELD.inc()
        return entry

    def state(self, message_id, key, stamp, deliver, room=None, position=None):
        """Deliver a state of `key` (of a message: its version, or DELETED; of a member's read marker: its position)
        if it is newer than every one delivered here, right after message `message_id` (at `position` in `room`)
        when that is held, or has not come yet."""
        with self.lock:
            where = self.held_ids.get(message_id)
            if where is None and self._ahead(room, position):
                where = room, position
            if where is None:
                self._state(key, stamp, deliver)
            else:
                self._hold(*where, message_id).states.append((key, stamp, deliver))

    def _ahead(self, room, position):
        """Whether the message at `position` has yet to reach this process's sockets in `room`."""
        if position is None or room in self.starting:
            return position is not None
        return position >= self.next.get(room, position + 1) and self.listened(room)

    def _state(self, key, stamp, deliver):
        if stamp > self.versions.get(key, -1):
            _keep(self.versions, key, stamp, self.max_keys)
            _run(deliver)

    def _advance(self, room, position):
        held = self.held.get(room)
        while held and position in held and held[position].deliver is not None:
            self._deliver_held(room, position)
            position += 1
        if held is not None and not held:
            del self.held[room]
        _keep(self.next, room, position, self.max_keys, self.held)

    def _take(self, room, position):
        entry = self.held[room].pop(position)
        self.held_ids.pop(entry.message_id, None)
        return entry

    def _deliver_held(self, room, position, payload=None):
        """A held message as it came, else (only its states came) as the database read it (`payload`) if it did, then
        its states."""
        entry = self._take(room, position)
        if entry.deliver is not None:
            _run(entry.deliver)
        elif payload is not None:
            metrics.MESSAGES_READ_FOR_ORDER.inc()
            _run(self.deliver_stored, room, entry.message_id, payload)
        for state in entry.states:
            self._state(*state)

    def _drop(self, room, position):
        """A held message not to deliver (deleted since, or below a new floor); its states still go."""
        entry = self._take(room, position)
        self.deliver_stored(room, entry.message_id, None)
        for state in entry.states:
            self._state(*state)

    def _release(self, room):
        held = self.held[room]
        for position in sorted(held):
            self._deliver_held(room, position)
        del self.held[room]
        self.next[room] = position + 1

    def _wait(self, room, held):
        """While the room holds messages (`held`, until it is caught up): after `hold_seconds`, deliver what the
        database says is settled up to the last one held; again after twice as long each time the room did not move
        (a dead writer's position: 8 reads in GAP_SECONDS of 10, not 40), up to SLOWEST times `hold_seconds`. A room
        that has not moved for `max_wait` goes on."""
        moved, first_before, pause = time.monotonic(), None, self.hold_seconds
        while True:
            self.server.sleep(pause)
            with self.lock:
                if self.held.get(room) is not held:
                    return
                if room in self.starting:  # its first join reads where the room stands: it moves once that answers
                    moved = time.monotonic()
                    continue
                first, last = self.next[room], max(held)
            if first != first_before:
                moved, first_before, pause = time.monotonic(), first, self.hold_seconds
            else:
                pause = min(2 * pause, SLOWEST * self.hold_seconds)
            settled = None
            if time.monotonic() - moved > self.max_wait:
                log.warning("room %s: position %d still unsettled; delivering what is held", room, first)
            else:
                try:
                    metrics.ORDER_READS.inc()
                    settled = self.settle(room, first, last)
                except Exception:  # the database out of reach: nothing is held longer than it can say why
                    log_failure(log, "room %s: positions %d-%d not read; delivering what is held", room, first, last)
            with self.lock:
                if self.held.get(room) is not held:
                    return
                if settled is None:
                    self._release(room)
                    return
                for position, message_id, payload in settled:
                    if position < self.next[room]:
                        continue
                    if position in held and payload is not None:  # as its broadcast came, if it did; its states
                        self._deliver_held(room, position, payload)
                    elif position in held:
                        self._drop(room, position)
                    else:
                        if payload is not None:
                            metrics.MESSAGES_READ_FOR_ORDER.inc()
                        _run(self.deliver_stored, room, message_id, payload)
                    self.next[room] = position + 1
                self._advance(room, self.next[room])


def _keep(table, key, value, limit, busy=()):
    """`table[key] = value`, at the end of the table: once it holds more than `limit` keys, the one quiet longest (the
    first, not in `busy`) is forgotten, and starts again from its next stamp."""
    table.pop(key, None)
    table[key] = value
    if len(table) > limit and (quiet := next((quiet for quiet in table if quiet not in busy), None)) is not None:
        del table[quiet]


def _run(deliver, *args):
    """One delivery; one that fails is logged, and the room goes on."""
    try:
        deliver(*args)
    except Exception:
        log.exception("a message's delivery to this process's sockets failed")
