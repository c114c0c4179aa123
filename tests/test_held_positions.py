"""Positions handed out from a serving process's memory (`model.message_log.HeldPositions`, POSITIONS_IN_MEMORY,
no REDIS_URL): in this process against the real database daemon, then through live servers."""

import os
import subprocess
import sys
import time

import mongoengine
import pytest
from bson import ObjectId
from pymongo import monitoring

from model import message_log
from model.message import Message
from model.message_log import MessageLog, RoomGone, top_position
from tests.support import ROOT, TEST_SECRET, Api, register

HELD = {"POSITIONS_IN_MEMORY": "true"}


class Commands(monitoring.CommandListener):
    """The names of the commands this process sends, in order."""

    def __init__(self):
        self.names = []

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def held(mongo_uri, db, monkeypatch):
    """A MessageLog of this process holding its positions, a room to write in, and the commands it sends."""
    commands = Commands()
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard", event_listeners=[commands])
    Message.ensure_indexes()
    monkeypatch.setattr(message_log, "_held", None)
    message_log.hold_positions()
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
    commands.names.clear()
    for i in range(5):
        log.append(_message(room, f"m{i}"))
    assert commands.names == ["insert"] * 5, "a batch read or moved the room's counter"
    assert _positions(db, room) == [1, 2, 3, 4, 5, 6]
    commands.names.clear()
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
    message_log.hold_positions()
    assert top_position(room) == 3
    message = _message(room)
    log.append(message)
    assert message.seq == 4
    assert db.room_counters.find_one({"_id": room})["held"] == message_log._held.me


def test_a_writer_the_holder_does_not_know_of_costs_a_retry_not_a_position(held, db):
    log, room, _ = held
    log.append(_message(room, "first"))
    db.messages.insert_many(
        [{"_id": ObjectId(), "room": room, "seq": seq, "message_body": "a tool's"} for seq in range(2, 6)]
    )
    message = _message(room, "after")
    log.append(message)
    assert message.seq == 6, "the batch did not go past the highest stored position"
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


def test_a_server_serving_alone_reads_back_what_it_handed_out(server_factory, db):
    node = server_factory(**HELD)
    api = Api(node.url)
    owner, member = register(api), register(api)
    room = api.post("/api/rooms", owner.token, json={"name": f"held-{ObjectId()}"}).json()["id"]
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


def test_nothing_stored_is_hidden_after_a_holder_is_killed_before_writing_its_counter(server_factory, db):
    node = server_factory(**HELD)
    api = Api(node.url)
    owner = register(api)
    room = api.post("/api/rooms", owner.token, json={"name": f"held-{ObjectId()}"}).json()["id"]
    sent = [_send(api, owner, room, f"m{i}")["id"] for i in range(3)]
    node.kill()
    # A kill within the second before the counter's write leaves it behind: make it so, whenever the kill came.
    db.room_counters.update_one({"_id": ObjectId(room)}, {"$set": {"seq": 0}})
    plain = server_factory()  # positions from the counters: reads the stored messages above a held one
    newest = Api(plain.url).get(f"/api/messages?room={room}", owner.token).json()["messages"]
    assert [m["id"] for m in newest] == sent[::-1]
    again = server_factory(**HELD)
    api = Api(again.url)
    assert [m["id"] for m in api.get(f"/api/messages?room={room}", owner.token).json()["messages"]] == sent[::-1]
    after = _send(api, owner, room, "after")
    assert db.messages.find_one({"_id": ObjectId(after["id"])})["seq"] == 4
