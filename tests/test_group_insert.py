"""Group commit of message inserts (model/message_log.py), in this process against the real database daemon."""

import threading
import time
import traceback

import mongoengine
import pytest
from bson import ObjectId
from pymongo.errors import ServerSelectionTimeoutError

from model import message_log
from model.embedded import free_port
from model.message import Message
from model.message_log import (
    MessageLog,
    forget_room,
    move_counters,
    number_old_messages,
    take_positions,
    take_positions_of,
)
from tests.support import Commands

ROOM = ObjectId()


@pytest.fixture
def inserts(mongo_uri, db):
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard")
    Message.ensure_indexes()  # as a server does at start-up; this test may run before any
    db.rooms.insert_one({"_id": ROOM, "name": "log", "name_key": f"log-{ROOM}"})
    yield MessageLog()
    mongoengine.disconnect()


def _message(user, body, client_id=None):
    return Message(room=ROOM, user_id=user, user_name="u", message_body=body, client_id=client_id)


def _held(inserts):
    """Hold the first write until released; record every batch's size."""
    sizes, release, write = [], threading.Event(), inserts._write

    def held(batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            release.wait(5)
        write(batch)

    inserts._write = held
    return sizes, release


def _until(predicate):
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _in_two_batches(inserts, sizes, release, threads):
    """Start the first sender, whose write `_held` holds, then the others, which make the next batch together;
    release the first write and wait for every sender."""
    threads[0].start()
    _until(lambda: sizes == [1])
    for thread in threads[1:]:
        thread.start()
    _until(lambda: len(inserts.pending) == len(threads) - 1)
    release.set()
    for thread in threads:
        thread.join(5)


def _run(inserts, message, errors):
    try:
        inserts.append(message)
    except Exception as error:
        errors[message.message_body] = error


def test_sends_that_arrive_during_a_write_are_stored_together_in_the_next(inserts, db):
    sizes, release = _held(inserts)
    user, errors = ObjectId(), {}
    messages = [_message(user, f"m{i}") for i in range(6)]
    first = threading.Thread(target=_run, args=(inserts, messages[0], errors))
    first.start()
    _until(lambda: sizes == [1])
    others = [threading.Thread(target=_run, args=(inserts, m, errors)) for m in messages[1:]]
    for thread in others:
        thread.start()
    _until(lambda: len(inserts.pending) == 5)
    assert db.messages.count_documents({"user_id": user}) == 0, "nothing is acked before it is stored"
    release.set()
    for thread in (first, *others):
        thread.join(5)
    assert sizes == [1, 5] and errors == {}
    stored = {d["_id"]: d["message_body"] for d in db.messages.find({"user_id": user})}
    assert stored == {m.id: m.message_body for m in messages}


def test_a_duplicate_in_a_batch_fails_alone(inserts, db):
    sizes, release = _held(inserts)
    user, errors = ObjectId(), {}
    threads = [threading.Thread(target=_run, args=(inserts, _message(user, "lead"), errors))]
    threads[0].start()
    _until(lambda: sizes == [1])
    for body in ("retry-1", "retry-2", "other"):
        client_id = "other" if body == "other" else "same"
        threads.append(threading.Thread(target=_run, args=(inserts, _message(user, body, client_id), errors)))
        threads[-1].start()
    _until(lambda: len(inserts.pending) == 3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 1 and isinstance(next(iter(errors.values())), mongoengine.NotUniqueError)
    assert db.messages.count_documents({"user_id": user}) == 3


@pytest.mark.parametrize("told", ["before the insert", "after the insert"])
def test_a_message_stored_as_its_room_is_deleted_goes_with_the_room(inserts, db, told):
    """The room is deleted (room, counter, messages) after the batch took its position and before its insert; this
    process is told of it (`forget_room`, as every process is) before or after the insert: the send is
    acknowledged, and its message is deleted with the room's others."""
    room = db.rooms.insert_one({"name": "doomed", "name_key": f"doomed-{ObjectId()}"}).inserted_id
    take_positions(room, 1)  # the counter exists, as for any room that had a message
    insert = inserts._insert

    def deleted_meanwhile(waiters):
        db.rooms.delete_one({"_id": room})
        db.room_counters.delete_one({"_id": room})
        db.messages.delete_many({"room": room})
        if told == "before the insert":
            forget_room(room)
        return insert(waiters)

    inserts._insert = deleted_meanwhile
    inserts.append(Message(room=room, user_id=ObjectId(), user_name="u", message_body="late"))
    if told == "after the insert":
        assert db.messages.count_documents({"room": room}) == 1
        forget_room(room)
    assert db.messages.count_documents({"room": room}) == 0


def test_a_failed_write_fails_its_send_and_leaves_no_one_waiting():
    mongoengine.connect(host=f"mongodb://127.0.0.1:{free_port()}/gone", serverSelectionTimeoutMS=200,
                        uuidRepresentation="standard")  # fmt: skip
    try:
        inserts = MessageLog()
        for body in ("first", "second"):  # the second would hang if the first had kept the lead
            with pytest.raises(ServerSelectionTimeoutError):
                inserts.append(_message(ObjectId(), body))
        assert inserts.pending == [] and inserts.writing is False
    finally:
        mongoengine.disconnect()


def test_a_message_the_driver_cannot_encode_fails_only_its_own_sender(inserts, db):
    sizes, release = _held(inserts)
    user, errors = ObjectId(), {}
    threads = [threading.Thread(target=_run, args=(inserts, _message(user, "lead"), errors))]
    threads[0].start()
    _until(lambda: sizes == [1])
    for body in ("fine-1", "bad \ud800", "fine-2"):  # a lone surrogate: BSON cannot encode it
        threads.append(threading.Thread(target=_run, args=(inserts, _message(user, body), errors)))
        threads[-1].start()
    _until(lambda: len(inserts.pending) == 3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert list(errors) == ["bad \ud800"]
    stored = sorted(d["message_body"] for d in db.messages.find({"user_id": user}))
    assert stored == ["fine-1", "fine-2", "lead"]
    positions = sorted(d["seq"] for d in db.messages.find({"room": ROOM}))
    assert positions == list(range(positions[0], positions[0] + 4)), "the failed position is filled, not left open"


def test_positions_taken_at_once_never_overlap(inserts, db):
    """Writers racing for one room's counter (two processes' batches) each get their own run of positions."""
    taken, lock = [], threading.Lock()

    def take(count):
        for _ in range(20):
            last = take_positions(ROOM, count)
            with lock:
                taken.extend(range(last - count + 1, last + 1))

    threads = [threading.Thread(target=take, args=(count,)) for count in (1, 2, 3, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 20 * (1 + 2 + 3 + 5) + 1))
    assert db.room_counters.find_one({"_id": ROOM})["seq"] == len(taken)


def test_a_room_without_a_counter_starts_at_one_and_a_gone_room_has_none(inserts, db):
    older = db.rooms.insert_one({"name": "older", "name_key": f"older-{ObjectId()}"}).inserted_id
    assert take_positions(older, 3) == 3
    assert take_positions(older, 1) == 4
    assert take_positions(ObjectId(), 1) is None


def test_messages_from_before_positions_get_them_in_id_order(db):
    """The start-up migration (`number_old_messages`), on a database of its own."""
    old = db.client[f"before-positions-{ObjectId()}"]
    try:
        room = old.rooms.insert_one({"name": "old"}).inserted_id
        ids = sorted(ObjectId() for _ in range(4))
        old.archived_messages.insert_one({"_id": ids[0], "room": room})
        old.messages.insert_many([{"_id": oid, "room": room} for oid in reversed(ids[1:])])
        number_old_messages(old)
        positions = {doc["_id"]: doc["seq"] for name in ("archived_messages", "messages") for doc in old[name].find()}
        assert [positions[oid] for oid in ids] == [1, 2, 3, 4]
        assert old.rooms.find_one({"_id": room}) == {"_id": room, "name": "old", "archived_seq": 1}
        assert old.room_counters.find_one({"_id": room})["seq"] == 4
    finally:
        db.client.drop_database(old.name)


def test_a_counter_another_process_moved_is_read_again(inserts, db):
    first = take_positions(ROOM, 2)
    db.room_counters.update_one({"_id": ROOM}, {"$inc": {"seq": 5}})  # another process's batch
    assert take_positions(ROOM, 1) == first + 6
    assert take_positions(ROOM, 1) == first + 7


def test_a_batch_s_rooms_move_their_counters_in_one_command(mongo_uri, db, monkeypatch):
    """The rooms this process moved last cost one update command together, the others one read more; one another
    process moved, one deleted with its counter and one whose counter was lost are each read again, and no position
    is taken twice."""
    commands = Commands()
    mongoengine.connect(host=mongo_uri, uuidRepresentation="standard", event_listeners=[commands])
    try:
        a, b, gone, lost, e = db.rooms.insert_many(
            [{"name": n, "name_key": f"{n}-{ObjectId()}"} for n in "abcde"]
        ).inserted_ids
        assert take_positions_of({a: 1, b: 2, gone: 1, lost: 1, e: 1}) == {a: 1, b: 2, gone: 1, lost: 1, e: 1}
        db.room_counters.update_one({"_id": b}, {"$inc": {"seq": 5}})  # another process's batch
        db.rooms.delete_one({"_id": gone})
        db.room_counters.delete_many({"_id": {"$in": [gone, lost]}})
        db.messages.insert_one({"room": lost, "seq": 1})
        commands.sent.clear()
        assert take_positions_of({a: 2, b: 1, gone: 1, lost: 1, e: 3}) == {a: 3, b: 8, gone: None, lost: 2, e: 4}
        name, first = commands.sent[0]
        assert name == "update" and len(first["updates"]) == 5
        assert db.room_counters.find_one({"_id": gone}) is None, "a deleted room's counter is not brought back"
        commands.sent.clear()
        assert take_positions_of({a: 1, b: 1, lost: 1, e: 1}) == {a: 4, b: 9, lost: 3, e: 5}
        assert [name for name, _ in commands.sent] == ["update"]
        monkeypatch.setattr(message_log, "_last_seen", {})  # a process that has not written to them yet
        commands.sent.clear()
        assert take_positions_of({a: 1, b: 1, lost: 1, e: 1}) == {a: 5, b: 10, lost: 4, e: 6}
        assert [name for name, _ in commands.sent] == ["find", "update"]
    finally:
        mongoengine.disconnect()


class MovesOnAfterUpdates(Commands):
    """Another process's batch moves a counter on just after each update command of this one is answered."""

    def __init__(self, db, room):
        super().__init__()
        self.db, self.room = db, room

    def succeeded(self, event):
        if event.command_name == "update":
            self.db.room_counters.update_one({"_id": self.room}, {"$inc": {"seq": 1}, "$set": {"by": ObjectId()}})


def test_positions_no_answer_says_are_this_batch_s_are_filled_with_tombstones(mongo_uri, db):
    """A batch moved a counter, another process moved it on before the batch read it back: the batch cannot tell its
    move from a refused one, so it fills those positions (whoever held them numbers its messages again) and moves
    the counter anew; nothing is taken twice and no position is left empty."""
    a, b = db.rooms.insert_many([{"name": n, "name_key": f"{n}-{ObjectId()}"} for n in "ab"]).inserted_ids
    mongoengine.connect(host=mongo_uri, uuidRepresentation="standard")
    try:
        assert take_positions_of({a: 2, b: 1}) == {a: 2, b: 1}
    finally:
        mongoengine.disconnect()
    db.room_counters.update_one({"_id": b}, {"$inc": {"seq": 1}})  # so this batch's move of b is refused
    mongoengine.connect(host=mongo_uri, uuidRepresentation="standard", event_listeners=[MovesOnAfterUpdates(db, a)])
    try:
        lasts = take_positions_of({a: 2, b: 1})
    finally:
        mongoengine.disconnect()
    gaps = sorted(doc["seq"] for doc in db.messages.find({"room": a, "gap": True}))
    assert gaps == [3, 4], "the batch's first positions in a, which it could not tell were its own"
    assert lasts[a] > 5 and lasts[b] > 2
    assert db.room_counters.find_one({"_id": a})["seq"] >= lasts[a]


def test_a_room_whose_counter_was_lost_goes_on_above_its_stored_messages(inserts, db):
    """A counter deleted while its room lives on (a crash between the two deletes of a room) starts again."""
    first = take_positions(ROOM, 3)
    db.messages.insert_one({"room": ROOM, "seq": first, "gap": True})
    db.rooms.update_one({"_id": ROOM}, {"$set": {"archived_seq": 1}})
    db.room_counters.delete_one({"_id": ROOM})
    assert take_positions(ROOM, 1) == first + 1
    db.room_counters.delete_one({"_id": ROOM})
    db.messages.delete_many({"room": ROOM})
    assert take_positions(ROOM, 1) == 2, "the archive's watermark is a floor too"


def test_counters_kept_in_rooms_move_to_their_collection_once(db):
    """The start-up migration (`move_counters`), on a database of its own; run twice, it changes nothing more."""
    old = db.client[f"room-counters-{ObjectId()}"]
    try:
        rooms = old.rooms.insert_many([{"name": "a", "seq": 7}, {"name": "b", "seq": 0}, {"name": "c"}]).inserted_ids
        old.room_counters.insert_one({"_id": rooms[0], "seq": 9})  # a run cut short after copying it
        for _ in range(2):
            move_counters(old)
        assert [old.rooms.find_one({"_id": room}).get("seq") for room in rooms] == [None, None, None]
        counters = {doc["_id"]: doc["seq"] for doc in old.room_counters.find()}
        assert counters == {rooms[0]: 9, rooms[1]: 0}
    finally:
        db.client.drop_database(old.name)


def test_the_sends_of_a_failed_batch_each_raise_its_error_from_where_it_failed(inserts, monkeypatch):
    """The sends of a batch whose positions could not be taken share one error; each raises it with the frames of the
    failure and its own, not those of the sends that raised it before (a log growing with the square of them)."""
    sizes, release = _held(inserts)

    def out_of_reach(counts, db=None):
        try:
            raise ConnectionError("the database is out of reach")
        except ConnectionError as error:  # one error for every room of the batch, as take_positions_of gives
            return dict.fromkeys(counts, error)

    monkeypatch.setattr(message_log, "take_positions_of", out_of_reach)
    depths = {}

    def send(message):
        try:
            inserts.append(message)
        except ConnectionError as error:
            depths[message.message_body] = len(traceback.extract_tb(error.__traceback__))

    threads = [threading.Thread(target=send, args=(_message(ObjectId(), f"m{i}"),)) for i in range(5)]
    _in_two_batches(inserts, sizes, release, threads)
    assert sizes == [1, 4] and len(depths) == 5
    assert len(set(depths.values())) == 1, depths


def test_announcements_follow_the_rooms_order_whichever_sender_wakes_first(inserts, db):
    """Sixteen threads send at once: the announcements come one at a time in position order, each before its own
    send returns. Made by each sender once its send returned, about 40% of them came out of order."""
    announced, errors = [], []

    def announce(message):
        announced.append(message.seq)

    def send(k):
        try:
            for i in range(40):
                message = _message(ObjectId(), f"{k}:{i}")
                inserts.append(message, announce)
                assert message.seq in announced
        except Exception as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert announced == list(range(1, 641))


def test_an_announcement_that_fails_is_logged_and_its_send_still_returns(inserts, db, caplog):
    sizes, release = _held(inserts)
    announced, errors = [], {}

    def announce(message):
        if message.message_body == "m2":
            raise RuntimeError("no broadcast for m2")
        announced.append(message.message_body)

    def send(message):
        try:
            inserts.append(message, announce)
        except Exception as error:
            errors[message.message_body] = error

    threads = [threading.Thread(target=send, args=(_message(ObjectId(), f"m{i}"),)) for i in range(5)]
    _in_two_batches(inserts, sizes, release, threads)
    assert errors == {} and db.messages.count_documents({"room": ROOM}) == 5
    assert sorted(announced) == ["m0", "m1", "m3", "m4"]
    assert "no broadcast for m2" in caplog.text and "stored, not announced" in caplog.text
