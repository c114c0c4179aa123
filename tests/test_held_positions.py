"""Positions handed out from a serving process's memory (`model.message_log.HeldPositions`, POSITIONS_IN_MEMORY,
no REDIS_URL): in this process against the real database daemon, then through live servers."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import mongoengine
import pymongo
import pytest
import requests
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect

from model import message_log
from model.embedded import start_daemon, stop_daemon, with_database
from model.message import Message
from model.message_log import MessageLog, RoomGone, top_position
from tests.support import ROOT, TEST_SECRET, Api, Commands, LiveServer, register

HELD = {"POSITIONS_IN_MEMORY": "true"}


@pytest.fixture
def held(mongo_uri, db, monkeypatch):
    """A MessageLog of this process holding its positions, a room to write in, and the commands it sends."""
    commands = Commands()
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard", event_listeners=[commands])
    Message.ensure_indexes()
    monkeypatch.setattr(message_log, "_candidate", None)
    monkeypatch.setattr(message_log, "_held", None)
    monkeypatch.setattr(message_log, "HOLDER_SECONDS", 60)  # no counters loop beats here: it holds for a minute
    message_log.hold_positions()
    assert message_log._held is not None, "alone, this process holds positions"
    room = db.rooms.insert_one({"name": "held", "name_key": f"held-{ObjectId()}"}).inserted_id
    yield MessageLog(), room, commands
    mongoengine.disconnect()


def _message(room, body="m"):
    return Message(room=room, user_id=ObjectId(), user_name="u", message_body=body)


def _positions(db, room):
    return [doc["seq"] for doc in db.messages.find({"room": room}).sort("seq", 1)]


def test_after_its_first_send_a_room_costs_a_batch_only_its_insert(held, db):
    log, room, commands = held
    log.append(_message(room, "claims the room"))
    assert db.room_counters.find_one({"_id": room})["held"] == message_log._held.me
    commands.sent.clear()
    for i in range(5):
        log.append(_message(room, f"m{i}"))
    assert commands.names == ["insert"] * 5, "a batch read or moved the room's counter"
    assert _positions(db, room) == [1, 2, 3, 4, 5, 6]
    commands.sent.clear()
    assert top_position(room) == 6, "this process's readers see what it handed out"
    assert commands.names == ["find"], "the holder read the stored messages of a room it holds"
    assert db.room_counters.find_one({"_id": room})["seq"] < 6
    message_log.write_held_positions()
    assert db.room_counters.find_one({"_id": room})["seq"] == 6


def test_a_counter_another_process_held_is_read_with_the_rooms_stored_messages(held, db, monkeypatch):
    log, room, _ = held
    # What a holder killed before it wrote its counter leaves: the counter behind the stored messages, its mark.
    db.messages.insert_many([{"_id": ObjectId(), "room": room, "seq": seq, "time_stamp": None} for seq in (1, 2, 3)])
    db.room_counters.insert_one({"_id": room, "seq": 1, "held": ObjectId()})
    monkeypatch.setattr(message_log, "_held", None)
    assert top_position(room) == 3, "a reader outside the holder trusted a held counter"
    monkeypatch.setattr(message_log, "_held", message_log.HeldPositions())
    assert top_position(room) == 3
    message = _message(room)
    log.append(message)
    assert message.seq == 4
    assert db.room_counters.find_one({"_id": room})["held"] == message_log._held.me


def test_a_writer_the_holder_does_not_know_of_costs_a_retry_not_a_position(held, db):
    log, room, commands = held
    log.append(_message(room, "first"))
    db.messages.insert_many(
        [{"_id": ObjectId(), "room": room, "seq": seq, "message_body": "a tool's"} for seq in range(2, 6)]
    )
    message = _message(room, "after")
    commands.sent.clear()
    log.append(message)
    assert message.seq == 6
    assert commands.names.count("insert") == 2, "the batch tried the positions one by one, not past the highest"
    assert _positions(db, room) == [1, 2, 3, 4, 5, 6]


def test_a_counter_gone_under_the_holder_is_claimed_again_from_what_is_stored(held, db):
    log, room, _ = held
    log.append(_message(room))
    log.append(_message(room))
    db.messages.delete_many({"room": room})  # the database emptied under the process
    db.room_counters.delete_many({})
    message_log.write_held_positions()
    message = _message(room)
    log.append(message)
    assert message.seq == 1, "positions went on from memory past messages that are gone"
    db.rooms.delete_one({"_id": room})
    db.room_counters.delete_many({})
    message_log.write_held_positions()
    with pytest.raises(RoomGone):
        log.append(_message(room))


def test_a_room_deleted_here_is_forgotten_at_once(held, db):
    log, room, _ = held
    log.append(_message(room))
    db.rooms.delete_one({"_id": room})
    message_log.delete_counter(room)
    with pytest.raises(RoomGone):
        log.append(_message(room))


def test_a_room_another_process_deleted_loses_what_the_holder_stored_in_it(held, db):
    log, room, _ = held
    log.append(_message(room))
    db.rooms.delete_one({"_id": room})  # another process's deletion (without REDIS_URL, it cannot tell this one)
    db.room_counters.delete_one({"_id": room})
    log.append(_message(room, "stored after the deletion's sweep"))
    message_log.write_held_positions()
    assert db.messages.count_documents({"room": room}) == 0
    with pytest.raises(RoomGone):
        log.append(_message(room))


def test_a_holder_that_meets_another_takes_positions_from_the_counters_until_it_is_gone(held, db):
    log, room, commands = held
    log.append(_message(room))
    log.append(_message(room))
    other = db.position_holders.insert_one({"beat": datetime.now(UTC)}).inserted_id
    message_log.write_held_positions()
    assert message_log._held is None, "two processes held positions in memory"
    assert db.room_counters.find_one({"_id": room})["seq"] == 2, "it stopped without writing what it handed out"
    commands.sent.clear()
    message = _message(room)
    log.append(message)
    assert message.seq == 3 and "update" in commands.names, "a position was not taken from the counter"
    db.position_holders.update_one(
        {"_id": other}, {"$set": {"beat": datetime.now(UTC) - timedelta(seconds=message_log.HOLDER_SECONDS + 1)}}
    )
    message_log.write_held_positions()
    assert message_log._held is not None, "alone again, it did not hold positions"
    message = _message(room)
    log.append(message)
    assert message.seq == 4


def test_a_holder_that_stalled_past_its_beat_takes_positions_from_what_is_stored(held, db):
    """Taken for gone, it may have been followed by another holder whose messages the archive moved: it trusts its
    memory no more until its next beat, and then holds anew."""
    log, room, _ = held
    log.append(_message(room))
    message_log._held.confirmed -= message_log.HOLDER_SECONDS  # a stall as long as the other processes wait
    db.rooms.update_one({"_id": room}, {"$set": {"archived_seq": 5}})  # another holder's 2-5, archived since
    db.room_counters.update_one({"_id": room}, {"$set": {"seq": 5, "held": ObjectId()}})
    message = _message(room)
    log.append(message)
    assert message.seq == 6, "a stalled holder gave a position from its memory"
    stalled = message_log._held
    message_log.write_held_positions()  # alone again: it holds, with a new mark
    assert message_log._held is not stalled and message_log._held.fresh()
    log.append(message := _message(room))
    assert message.seq == 7


def test_a_batch_that_took_long_is_stored_again_past_an_archive_run_that_met_it(held, db, monkeypatch):
    log, room, _ = held
    log.append(_message(room))
    monkeypatch.setattr(message_log, "_STALLED", 0)  # every batch counts as slow
    db.rooms.update_one({"_id": room}, {"$set": {"archived_seq": 10}})  # archived while it was being stored
    message = _message(room)
    log.append(message)
    assert message.seq == 11
    assert _positions(db, room) == [1, 11]


def test_a_room_forgotten_while_a_batch_claims_another_is_claimed_again(held, db):
    log, room, _ = held
    log.append(_message(room))
    other = db.rooms.insert_one({"name": "other", "name_key": f"other-{ObjectId()}"}).inserted_id
    holder, claim = message_log._held, message_log._held.claim
    holder.write()

    def claim_while_forgetting(rooms):
        holder.forget(room)  # the memory's bound (its counter written) while the claim waits for the database
        return claim(rooms)

    holder.claim = claim_while_forgetting
    assert message_log.take_positions_of({room: 1, other: 1}) == {room: 2, other: 1}


def test_a_batch_that_fails_as_a_whole_acknowledges_none_of_its_sends(held):
    log, room, _ = held
    waiters = [message_log._Waiter(_message(room)) for _ in range(3)]
    log.pending, log.writing = list(waiters), True

    def broken(batch):
        raise KeyError("a fault of the write itself")

    log._write = broken
    with pytest.raises(KeyError):
        log._write_pending()
    assert all(isinstance(waiter.error, KeyError) for waiter in waiters), "a send of the batch would be acked"


def test_positions_of_an_insert_that_failed_go_to_the_next_batch(held, db, monkeypatch):
    log, room, _ = held
    log.append(_message(room))
    insert_many = Collection.insert_many

    def unreachable(self, *args, **kwargs):
        monkeypatch.setattr(Collection, "insert_many", insert_many)
        raise AutoReconnect("the database is out of reach")

    monkeypatch.setattr(Collection, "insert_many", unreachable)
    with pytest.raises(AutoReconnect):
        log.append(_message(room))
    log.append(message := _message(room))
    assert message.seq == 2, "a failed insert left a hole that readers wait at"


@pytest.fixture
def held_server(server_factory):
    """Start a server that holds positions (alone on its database, as far as it knows); each is killed when the
    test ends, so that none says to a later test's servers that it holds positions there."""
    started = []

    def start(**env):
        started.append(server_factory(**{**HELD, **env}))
        return started[-1]

    yield start
    for node in started:
        node.kill()


def _room(api, owner):
    response = api.post("/api/rooms", owner.token, json={"name": f"held-{ObjectId()}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _send(api, user, room, body):
    response = api.post("/api/send", user.token, json={"room": room, "messageBody": body})
    assert response.status_code == 201, response.text
    return response.json()


def _archive(node):
    return subprocess.run(
        [sys.executable, "-m", "jobs.archive", "--older-than-days", "0"],
        cwd=ROOT,
        env={**os.environ, "MONGODB_URI": node.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_server_serving_alone_reads_back_what_it_handed_out(held_server, db):
    node = held_server()
    api = Api(node.url)
    owner, member = register(api), register(api)
    room = _room(api, owner)
    assert api.post(f"/api/rooms/{room}/join", member.token).status_code == 200
    first = _send(api, owner, room, "first")
    later = [_send(api, owner, room, f"m{i}") for i in range(3)]
    page = api.get(f"/api/messages?room={room}&after={first['id']}", member.token).json()
    assert [m["id"] for m in page["messages"]] == [m["id"] for m in later]
    assert api.get(f"/api/rooms/{room}", member.token).json()["unreadCount"] == 4
    joiner = register(api)
    api.post(f"/api/rooms/{room}/join", joiner.token)
    assert api.get(f"/api/rooms/{room}", joiner.token).json()["unreadCount"] == 0, "joined below what was stored"
    job = _archive(node)  # another process, at once: the counter may not be written yet
    assert job.returncode == 0 and "moved 4" in job.stdout, job.stdout + job.stderr
    archived = api.get(f"/api/messages?room={room}&archived=true", member.token).json()["messages"]
    assert len(archived) == 4
    deadline = time.monotonic() + 5
    while db.room_counters.find_one({"_id": ObjectId(room)})["seq"] < 4:
        assert time.monotonic() < deadline, "the counter did not follow what was handed out"
        time.sleep(0.1)


def test_nothing_stored_is_hidden_after_a_holder_is_killed_before_writing_its_counter(held_server, server_factory, db):
    node = held_server()
    api = Api(node.url)
    owner = register(api)
    room = _room(api, owner)
    sent = [_send(api, owner, room, f"m{i}")["id"] for i in range(3)]
    node.kill()
    # A kill within the second before the counter's write leaves it behind: make it so, whenever the kill came.
    db.room_counters.update_one({"_id": ObjectId(room)}, {"$set": {"seq": 0}})
    db.position_holders.delete_many({})  # the dead one's last word, older than HOLDER_SECONDS
    plain = server_factory()  # positions from the counters: reads the stored messages above a held one
    newest = Api(plain.url).get(f"/api/messages?room={room}", owner.token).json()["messages"]
    assert [m["id"] for m in newest] == sent[::-1]
    again = held_server()
    api = Api(again.url)
    assert [m["id"] for m in api.get(f"/api/messages?room={room}", owner.token).json()["messages"]] == sent[::-1]
    after = _send(api, owner, room, "after")
    assert db.messages.find_one({"_id": ObjectId(after["id"])})["seq"] == 4


@pytest.mark.parametrize("after", ["held", "counters"])
def test_an_archive_run_after_a_holder_died_does_not_give_its_positions_again(held_server, server_factory, db, after):
    """Its counter behind, the archive moved the room's messages out of the live collection: what comes next goes
    past the archive's watermark, whichever way the next server takes positions."""
    node = held_server()
    api = Api(node.url)
    owner, member = register(api), register(api)
    room = _room(api, owner)
    api.post(f"/api/rooms/{room}/join", member.token)
    for i in range(20):
        _send(api, owner, room, f"m{i}")
    node.kill()
    db.room_counters.update_one({"_id": ObjectId(room)}, {"$set": {"seq": 0}})  # as a kill before the write leaves it
    db.position_holders.delete_many({})  # the dead one's last word, older than HOLDER_SECONDS
    job = _archive(node)
    assert job.returncode == 0 and "moved 20" in job.stdout, job.stdout + job.stderr
    api = Api((held_server() if after == "held" else server_factory()).url)
    later = [_send(api, owner, room, f"after {i}") for i in range(5)]
    assert [db.messages.find_one({"_id": ObjectId(m["id"])})["seq"] for m in later] == [21, 22, 23, 24, 25]
    newest = api.get(f"/api/messages?room={room}", member.token).json()["messages"]
    assert [m["id"] for m in newest] == [m["id"] for m in reversed(later)]
    assert api.get(f"/api/rooms/{room}", member.token).json()["unreadCount"] == 5  # archived ones never count


def test_a_stop_writes_the_counters_once_the_sends_in_flight_are_stored(held_server, db):
    node = held_server()
    api = Api(node.url)
    owner = register(api)
    room = _room(api, owner)
    stop = threading.Event()

    def keep_sending():
        sender = Api(node.url)
        while not stop.is_set():
            try:
                sender.post("/api/send", owner.token, json={"room": room, "messageBody": "x"})
            except requests.RequestException:
                return

    senders = [threading.Thread(target=keep_sending) for _ in range(8)]
    for sender in senders:
        sender.start()
    time.sleep(1)
    node.proc.send_signal(signal.SIGTERM)
    node.proc.wait(20)
    stop.set()
    for sender in senders:
        sender.join()
    top = db.messages.find_one({"room": ObjectId(room)}, sort=[("seq", -1)])["seq"]
    assert db.room_counters.find_one({"_id": ObjectId(room)})["seq"] == top


def test_two_servers_without_redis_on_one_database_take_positions_from_the_counters(held_server, db):
    first = held_server()
    second = held_server()
    owner = register(Api(first.url))
    room = Api(first.url).post("/api/rooms", owner.token, json={"name": f"held-{ObjectId()}"}).json()["id"]
    deadline = time.monotonic() + 10
    while not all("positions are taken from the counters" in node.log() for node in (first, second)):
        assert time.monotonic() < deadline, "a server went on holding positions beside the other"
        time.sleep(0.2)
    answers = []

    def send(node, n):
        api = Api(node.url)
        for i in range(n):
            answers.append(api.post("/api/send", owner.token, json={"room": room, "messageBody": f"{node.port}-{i}"}))

    threads = [threading.Thread(target=send, args=(node, 30)) for node in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted({answer.status_code for answer in answers}) == [201]
    positions = [doc["seq"] for doc in db.messages.find({"room": ObjectId(room)})]
    assert sorted(positions) == list(range(1, 121))


@contextlib.contextmanager
def _on_a_database_of_its_own(tmp_path, **env):
    """A holder on a daemon of its own (the test stops the daemon), with three messages sent in a room: yields the
    daemon, the server, its API, the room's owner and the room."""
    daemon, uri = start_daemon(":memory:", log_path=str(tmp_path / "db.log"))
    node = LiveServer(with_database(uri, "chat"), tmp_path, **HELD, **env)
    try:
        api = Api(node.start().url)
        owner = register(api)
        room = _room(api, owner)
        for i in range(3):
            _send(api, owner, room, f"m{i}")
        yield daemon, node, api, owner, room
    finally:
        daemon.send_signal(signal.SIGCONT)
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)
        node.kill()
        stop_daemon(daemon)


def test_a_stop_while_the_database_hangs_ends_within_the_database_timeout(tmp_path):
    """The last write of the counters is bounded by DB_TIMEOUT_MS, not by the hard stop: the outage is logged once."""
    env = {"DB_TIMEOUT_MS": 1000, "SHUTDOWN_TIMEOUT": 30, "DRAIN_GRACE_SECONDS": 0}
    with _on_a_database_of_its_own(tmp_path, **env) as (daemon, node, _, _, _):
        daemon.send_signal(signal.SIGSTOP)
        node.proc.send_signal(signal.SIGTERM)
        node.proc.wait(20)  # the hard stop would come at 30 s
        log = node.log()
        assert "database unreachable" in log and "stopped" in log and "Traceback" not in log, log


def test_a_server_stalled_while_its_counters_write_waited_finds_the_database_answered(tmp_path):
    """The database answers within DB_TIMEOUT_MS, but the server is stopped (as a busy hub would be) before it takes
    the answer: no outage, no failure, and the counters are written."""
    with _on_a_database_of_its_own(tmp_path, DB_TIMEOUT_MS=3000) as (daemon, node, api, owner, room):
        daemon.send_signal(signal.SIGSTOP)
        time.sleep(1.3)  # the next write of the counters (a second apart) waits for the database
        node.proc.send_signal(signal.SIGSTOP)
        daemon.send_signal(signal.SIGCONT)  # hung 1.3 s, under DB_TIMEOUT_MS
        time.sleep(4)  # the server takes its answer past DB_TIMEOUT_MS
        node.proc.send_signal(signal.SIGCONT)
        _send(api, owner, room, "after")
        with pymongo.MongoClient(node.env["MONGODB_URI"]) as client:
            counters = client.get_default_database().room_counters
            deadline = time.monotonic() + 5
            while counters.find_one({"_id": ObjectId(room)})["seq"] != 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert counters.find_one({"_id": ObjectId(room)})["seq"] == 4
        log = node.log()
        assert "unreachable" not in log and "not written" not in log and "Traceback" not in log, log
