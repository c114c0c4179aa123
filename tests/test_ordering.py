"""What a process does with a room's message that arrives before an earlier one (utils/transport/ordering.py), on
real threads: the database's answers are given here, the cluster tests (tests/test_faults.py) ask a real one."""

import time

import pytest
import socketio
from pymongo.errors import ServerSelectionTimeoutError

from utils import outage
from utils.transport.ordering import DELETED, RoomOrder

HOLD = 0.05


class Room:
    """A RoomOrder whose room "r" has sockets here from position 1 on (`listened`: until they leave), recording what
    reaches them, what the database is asked and what it answers: `settled`, one answer a question, each [(position,
    message id, payload or None)]."""

    def __init__(self, listened=True, settled=(), max_wait=5, **limits):
        self.got, self.dropped, self.asked, self.settled = [], [], [], list(settled)
        self.entered = set()  # the rooms a socket here joined
        server = socketio.Server(async_mode="threading")
        in_room = lambda room: listened and room in self.entered  # noqa: E731
        self.order = RoomOrder(server, in_room, self._settle, self._stored, HOLD, max_wait, **limits)
        self.join("r", 1)

    def join(self, room, position, during=lambda: None):
        """A socket joins `room`; where the room stands is read as `position` (when it is the first), `during()` run
        while that is read (what arrives meanwhile, another join)."""

        def settled():
            during()
            return position

        self.order.join(room, settled, lambda: self.entered.add(room))

    def state(self, message_id, version, position=None, room="r"):
        """A new version of message `message_id`, at `position` in `room`."""
        got = f"{message_id} v{version}"
        self.order.state(message_id, message_id, version, lambda: self.got.append(got), room, position)

    def offer(self, *positions, room="r"):
        for position in positions:
            self.order.offer(room, position, lambda position=position: self.got.append(position))

    def _stored(self, room, message_id, payload):
        if payload is None:
            self.dropped.append(message_id)
        else:
            self.got.append(payload)

    def _settle(self, room, first, last):
        self.asked.append((first, last))
        answer = self.settled.pop(0) if self.settled else []
        if isinstance(answer, Exception):
            raise answer
        return answer

    def until(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            assert time.monotonic() < deadline, self.got
            time.sleep(0.01)
        return self.got


def test_a_late_message_is_held_until_the_earlier_ones_arrive():
    room = Room()
    room.offer(1, 4, 3)
    assert room.got == [1]
    room.offer(2)
    assert room.got == [1, 2, 3, 4] and room.order.held == {}


def test_what_the_database_settles_is_delivered_in_order_with_what_was_held():
    """Position 2 stored (its broadcast lost), 3 a tombstone, 5 still being written: 6 waits for 5."""
    room = Room(settled=[[(2, "m2", "stored 2"), (3, "m3", None), (4, "m4", "stored 4")]])
    room.offer(1, 4, 6)
    assert room.until(3) == [1, "stored 2", 4]  # 4's own broadcast, not the database's copy
    assert room.asked[0] == (2, 6) and room.dropped == ["m3"] and room.order.next["r"] == 5
    room.offer(2)  # its broadcast, late: at once (the managers drop a second delivery of a message)
    assert room.got == [1, "stored 2", 4, 2]
    room.offer(5)
    assert room.got[-2:] == [5, 6] and room.order.held == {}


def test_when_the_database_cannot_answer_what_is_held_goes_out_in_order():
    room = Room(settled=[ServerSelectionTimeoutError("down")])
    try:
        room.offer(1, 5, 3)
        assert room.until(3) == [1, 3, 5] and room.order.next["r"] == 6
        room.offer(2)
        assert room.got == [1, 3, 5, 2]
    finally:
        outage.database.recovered()  # the failure counted as an outage of this process's database


def test_a_room_held_past_max_wait_without_moving_goes_on():
    room = Room(max_wait=HOLD * 3)  # the database never settles position 2 (its room deleted meanwhile, say)
    room.offer(1, 3)
    assert room.until(2, timeout=2) == [1, 3] and len(room.asked) >= 2


def test_a_room_that_does_not_move_is_read_less_and_less_often():
    """Position 2's writer died: the database is asked after 1, 2, 4, 8, 8... holds, not after every one."""
    room = Room()
    room.offer(1, 3)
    time.sleep(HOLD * 24)
    assert 3 <= len(room.asked) <= 8, room.asked  # 24 at one read a hold


def test_a_room_that_moves_while_held_is_held_past_max_wait():
    """Each question settles one more position: the room is held for eight of them, four times max_wait."""
    room = Room(max_wait=HOLD * 2, settled=[[(p, f"m{p}", f"stored {p}")] for p in range(2, 10)])
    room.offer(1, 10)
    assert room.until(10) == [1, *(f"stored {p}" for p in range(2, 10)), 10]


def test_a_room_holds_at_most_max_held():
    room = Room(max_held=3)
    room.offer(1, 3, 4, 5)
    assert room.got == [1]
    room.offer(6)
    assert room.got == [1, 3, 4, 5, 6] and room.order.held == {}


def test_a_room_with_no_socket_here_holds_nothing_and_is_tracked_again_from_its_next_first_join():
    room = Room(listened=False)
    room.offer(1, 3, 2)
    assert room.got == [1, 3, 2] and room.asked == [] and "r" not in room.order.next
    room.offer(7, 6, room="never joined")
    assert room.got[-2:] == [7, 6] and room.order.next == {}


def test_the_room_quiet_longest_is_forgotten_first():
    room = Room(max_keys=2)
    room.join("a", 1)
    room.offer(1, room="r")
    room.join("c", 1)
    assert list(room.order.next) == ["r", "c"]
    room.offer(5, room="a")  # forgotten: delivered at once, until its next first join
    assert room.got == [1, 5]


def test_a_message_s_state_older_than_one_delivered_is_dropped_and_none_after_its_deletion():
    room = Room()
    for version in (2, 1, 2, 3, DELETED, 4):
        room.order.state("m", "m", version, lambda version=version: room.got.append(version))
    room.order.state("other", "other", 1, lambda: room.got.append("other 1"))
    assert room.got == [2, 3, DELETED, "other 1"]


def test_a_held_message_s_states_wait_for_it():
    room = Room()
    room.offer(1)
    room.order.offer("r", 3, lambda: room.got.append("m3"), "m3")
    room.order.state("m3", "m3", 1, lambda: room.got.append("m3 edited"))
    assert room.got == [1]
    room.offer(2)
    assert room.got == [1, 2, "m3", "m3 edited"] and room.order.held_ids == {}


def test_a_held_message_the_database_says_is_deleted_is_dropped_and_its_states_go():
    room = Room(settled=[[(2, "m2", "stored 2"), (3, "m3", None)]])
    room.offer(1)
    room.order.offer("r", 3, lambda: room.got.append("m3"), "m3")
    room.order.state("m3", "m3", DELETED, lambda: room.got.append("m3 deleted"))
    assert room.until(3) == [1, "stored 2", "m3 deleted"] and room.dropped == ["m3"]


def test_what_comes_below_a_first_join_s_position_is_history():
    """The last socket left with position 3 held; the next first join starts at 5: 3 and a late 4 are history."""
    room = Room()
    room.offer(1)
    room.order.offer("r", 3, lambda: room.got.append("m3"), "m3")
    room.entered.clear()
    room.join("r", 5)
    room.order.offer("r", 4, lambda: room.got.append("m4"), "m4")
    room.offer(5)
    assert room.got == [1, 5] and room.dropped == ["m3", "m4"] and room.order.held == {}


def test_a_change_that_comes_before_its_message_waits_for_it():
    """A change made through this process to a message whose broadcast has not come yet goes after the message."""
    room = Room()
    room.offer(1)
    room.state("m3", 1, position=3)
    room.offer(2)
    assert room.got == [1, 2]
    room.order.offer("r", 3, lambda: room.got.append("m3"), "m3")
    assert room.got == [1, 2, "m3", "m3 v1"] and room.order.held == {} and room.order.held_ids == {}


def test_a_change_whose_message_never_comes_goes_after_the_database_s_copy():
    room = Room(settled=[[(2, "m2", "stored 2")]])
    room.offer(1)
    room.state("m2", 1, position=2)
    assert room.until(3) == [1, "stored 2", "m2 v1"] and room.asked == [(2, 2)]


def test_a_change_of_a_message_delivered_here_or_in_a_room_not_followed_goes_at_once():
    room = Room()
    room.offer(1)
    room.state("m1", 1, position=1)
    room.state("elsewhere", 1, position=7, room="not joined here")
    room.state("unplaced", 1)  # from a process that does not say where its message is
    assert room.got == [1, "m1 v1", "elsewhere v1", "unplaced v1"] and room.order.held == {}


def test_what_arrives_while_a_first_join_reads_waits_for_it():
    room = Room()
    room.join("j", 5, during=lambda: room.offer(6, 5, room="j"))
    assert room.got == [5, 6] and room.order.next["j"] == 7


def test_concurrent_first_joins_follow_the_room_from_the_lowest_position_read():
    """The first join reads 11; a second one, reading after 11 was stored, reads 12 and enters first: 11's broadcast,
    late, still reaches the sockets (the first join's socket had not seen it), before 12."""
    room = Room()

    def second_join():
        room.join("j", 12)
        room.offer(12, 11, room="j")
        assert room.got == []

    room.join("j", 11, during=second_join)
    assert room.got == [11, 12] and room.order.floors["j"] == 11


def test_a_first_join_that_cannot_read_enters_nothing_and_what_came_goes_out():
    room = Room()

    def failing():
        room.offer(3, 2, room="j")
        raise ServerSelectionTimeoutError("down")

    with pytest.raises(ServerSelectionTimeoutError):
        room.order.join("j", failing, lambda: room.entered.add("j"))
    assert room.got == [2, 3] and "j" not in room.entered and "j" not in room.order.next
    room.join("j", 4)
    room.offer(5, 4, room="j")
    assert room.got == [2, 3, 4, 5]
