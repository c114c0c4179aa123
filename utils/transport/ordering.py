"""A room's chat messages, and a message's states, reach this process's sockets in the order the database took them,
whichever process stored or changed them.

With several processes, a message stored through another one comes through Redis, and can
arrive after a later one stored here and broadcast at once. A client that resumes from the
last message it got (`sync` after it) would skip the earlier one. So, for each room this
process has sockets in, a message (`Stamped`: the broadcast's payload, stamped with its
position) whose position is past the next one expected is held until the positions before
it arrive. A room is followed from its first socket's join here (`start`: the room's settled
position then, read by the join), until a message finds none of its sockets left: never from
whatever message happens to come first (a retry's broadcast of an old one, say).

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
"""

import logging
import threading
import time

from utils import metrics
from utils.outage import log_failure

log = logging.getLogger("chat.transport")


# The stamp of a message's deletion: later than every version of it.
DELETED = 2**53


class Stamped(dict):
    """A broadcast's payload with its stamp (sent beside it to the other processes, never to clients): a new
    message's position in its room, a changed message's version or DELETED, a read receipt's position."""

    __slots__ = ("stamp",)

    def __init__(self, payload, stamp):
        super().__init__(payload)
        self.stamp = stamp


class RoomOrder:
    """Deliveries of each room's messages in position order (see the module)."""

    def __init__(self, server, listened, deliver_stored, hold_seconds, max_wait, max_held=10_000, max_keys=100_000):
        self.server = server
        self.listened = listened  # room -> whether this process has sockets in it
        # (room, message id, payload or None): a position read from the database, delivered to this process's sockets
        # when it has a payload; its broadcast, if it comes, is then dropped
        self.deliver_stored = deliver_stored
        self.hold_seconds, self.max_wait = hold_seconds, max_wait
        self.max_held, self.max_keys = max_held, max_keys
        self.settle = None  # (room, first, last) -> [(position, message id, payload or None)]; set by the services
        self.lock = threading.Lock()  # deliveries are made holding it, in order
        self.next = {}  # room -> the next position to deliver, for rooms this process has sockets in
        self.held = {}  # room -> {position: deliver}, for rooms waiting for an earlier position
        self.versions = {}  # a message's id, or a read marker's key -> the latest stamp delivered of its states

    def start(self, room, position):
        """A room's first socket here joined, when every position below `position` was settled: from there on, its
        messages are delivered in order."""
        with self.lock:
            if room not in self.held:
                _keep(self.next, room, position, self.max_keys, self.held)

    def offer(self, room, position, deliver):
        """Deliver (call `deliver()`) now, or once every earlier position of the room is delivered or given up."""
        with self.lock:
            expected = self.next.get(room)
            if expected is None or position < expected:
                _run(deliver)
                return
            held = self.held.get(room)
            if held is None:
                if not self.listened(room):  # its last socket here left: it starts again at the next first join
                    del self.next[room]
                    _run(deliver)
                    return
                if position == expected:
                    _run(deliver)
                    self._advance(room, position + 1)
                    return
                held = self.held[room] = {}
                self.server.start_background_task(self._wait, room, held)
            held[position] = deliver
            metrics.MESSAGES_HELD.inc()
            if position == self.next[room]:
                self._advance(room, position)
            elif len(held) > self.max_held:
                log.warning("room %s held %d messages for an earlier one: delivered now", room, len(held))
                self._release(room)

    def newer(self, key, stamp):
        """Whether a state (of a message: its version, or DELETED; of a member's read marker: its position) is newer
        than every one of `key` delivered here; if so, it is the one delivered now."""
        with self.lock:
            if stamp <= self.versions.get(key, -1):
                return False
            _keep(self.versions, key, stamp, self.max_keys)
            return True

    def _advance(self, room, position):
        held = self.held.get(room)
        while held and position in held:
            _run(held.pop(position))
            position += 1
        if held is not None and not held:
            del self.held[room]
        _keep(self.next, room, position, self.max_keys, self.held)

    def _release(self, room):
        held = self.held.pop(room)
        for position in sorted(held):
            _run(held[position])
        self.next[room] = max(held) + 1

    def _wait(self, room, held):
        """While the room holds messages (`held`, until it is caught up): every `hold_seconds`, deliver what the
        database says is settled up to the last one held. A room that has not moved for `max_wait` goes on."""
        moved, first_before = time.monotonic(), None
        while True:
            self.server.sleep(self.hold_seconds)
            with self.lock:
                if self.held.get(room) is not held:
                    return
                first, last = self.next[room], max(held)
            if first != first_before:
                moved, first_before = time.monotonic(), first
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
                    if position >= self.next[room]:
                        deliver = held.pop(position, None)  # the broadcast's own delivery, when it came
                        if deliver is not None:
                            _run(deliver)
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
