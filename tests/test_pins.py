"""Pins: who may pin, one broadcast per change, the room's list newest pin first, 50 at most even under races;
slots left by a crash freed, slots of old databases moved out of the messages."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from services.pins import STALE
from tests.support import ROOT, TEST_SECRET, Api, assert_error, store_messages


def _send(api, user, room, body="pin me"):
    response = api.post("/api/send", user.token, json={"room": room, "messageBody": body})
    assert response.status_code == 201, response.text
    return response.json()


def _pin(api, user, message_id):
    return api.put(f"/api/messages/{message_id}/pin", user.token)


def _unpin(api, user, message_id):
    return api.delete(f"/api/messages/{message_id}/pin", user.token)


def _pins(api, user, room):
    response = api.get(f"/api/rooms/{room}/pins", user.token)
    assert response.status_code == 200, response.text
    return [message["id"] for message in response.json()["messages"]]


@pytest.fixture
def staff(api, make_user):
    """A private room with its owner, a moderator, a member, a readonly member, an admin (not a member), an outsider."""
    people = {name: make_user() for name in ("owner", "moderator", "member", "reader", "outsider")}
    people["admin"] = make_user(admin=True)
    room = api.post("/api/rooms", people["owner"].token, json={"name": "pinboard", "private": True}).json()
    for name, role in (("moderator", "moderator"), ("member", "member"), ("reader", "readonly")):
        answer = api.put(
            f"/api/rooms/{room['id']}/members/{people[name].id}", people["owner"].token, json={"role": role}
        )
        assert answer.status_code == 200, answer.text
    return room["id"], people


def _seed(db, room_id, user, count):
    """Store `count` messages straight in the database (as the server stores them); return their ids."""
    docs = [
        {"_id": ObjectId(), "room": ObjectId(room_id), "user_id": ObjectId(user.id), "user_name": user.username,
         "message_body": f"note {i}", "time_stamp": datetime.now(UTC), "deleted": False, "pinned_at": None}
        for i in range(count)
    ]  # fmt: skip
    store_messages(db, room_id, docs)
    return [str(doc["_id"]) for doc in docs]


def test_owner_moderators_and_admins_pin_members_and_readers_may_not(api, staff):
    room, people = staff
    message = _send(api, people["member"], room)
    for name in ("member", "reader"):
        assert_error(_pin(api, people[name], message["id"]), 403, "forbidden")
    assert_error(_pin(api, people["outsider"], message["id"]), 404, "not_found")
    for name in ("owner", "moderator", "admin"):
        pinned = _pin(api, people[name], message["id"])
        assert pinned.status_code == 200 and pinned.json()["pinned"] is True, (name, pinned.text)
        for other in ("member", "reader"):
            assert_error(_unpin(api, people[other], message["id"]), 403, "forbidden")
        unpinned = _unpin(api, people[name], message["id"])
        assert unpinned.status_code == 200 and unpinned.json()["pinned"] is False, (name, unpinned.text)


def test_every_participant_of_a_dm_pins_and_nobody_else(api, make_user):
    alice, bob, carol, admin = make_user(), make_user(), make_user(), make_user(admin=True)
    opened = api.post("/api/dms", alice.token, json={"userIds": [bob.id]})
    assert opened.status_code == 201, opened.text
    dm = opened.json()["id"]
    message = _send(api, alice, dm)
    assert _pin(api, bob, message["id"]).json()["pinned"] is True
    assert _pins(api, alice, dm) == [message["id"]]
    assert _pins(api, admin, dm) == [message["id"]], "an admin reads a DM"
    assert_error(_unpin(api, admin, message["id"]), 403, "forbidden")  # but takes no part in it
    assert_error(_pin(api, carol, message["id"]), 404, "not_found")
    assert_error(api.get(f"/api/rooms/{dm}/pins", carol.token), 404, "not_found")
    assert _unpin(api, alice, message["id"]).json()["pinned"] is False
    group = api.post("/api/rooms", alice.token, json={"name": "not-a-dm"}).json()["id"]
    api.put(f"/api/rooms/{group}/members/{bob.id}", alice.token, json={"role": "member"})
    assert_error(_pin(api, bob, _send(api, bob, group)["id"]), 403, "forbidden")


def test_a_pin_is_broadcast_once_per_change(api, staff, joined_pair):
    room, people = staff
    pair = joined_pair((people["owner"], people["member"]), room=room)
    message = _send(api, people["member"], room)
    assert _pin(api, people["owner"], message["id"]).json()["pinned"] is True
    assert _pin(api, people["moderator"], message["id"]).json()["pinned"] is True, "pinning twice changes nothing"
    assert _unpin(api, people["owner"], message["id"]).json()["pinned"] is False
    assert _unpin(api, people["owner"], message["id"]).json()["pinned"] is False
    for socket in pair.sockets:
        socket.settle()
        updates = socket.received("message_updated")
        assert [(update["id"], update["pinned"]) for update in updates] == [
            (message["id"], True),
            (message["id"], False),
        ]
    [stored] = api.get(f"/api/messages?room={room}", people["member"].token).json()["messages"]
    assert stored["pinned"] is False


def test_the_list_is_newest_pin_first_for_whoever_reads_the_room(api, staff):
    room, people = staff
    first, second, third = (_send(api, people["member"], room, f"m{i}")["id"] for i in range(3))
    for message in (second, first, third, first):  # pinning `first` again keeps its place
        assert _pin(api, people["owner"], message).status_code == 200
        time.sleep(0.01)  # pin times are kept to the millisecond: these are in order, not tied
    assert _pins(api, people["reader"], room) == [third, first, second]
    assert _pins(api, people["admin"], room) == [third, first, second]
    assert_error(api.get(f"/api/rooms/{room}/pins", people["outsider"].token), 404, "not_found")
    _unpin(api, people["moderator"], first)
    assert _pins(api, people["member"], room) == [third, second]
    listed = api.get("/api/rooms/pinboard/pins", people["member"].token).json()["messages"]
    assert all(message["pinned"] is True and message["room"] == room for message in listed), "by name too"


def test_fifty_pins_a_room_and_the_51st_is_a_conflict(api, staff, db):
    room, people = staff
    ids = _seed(db, room, people["member"], 51)
    for message in ids[:50]:
        assert _pin(api, people["owner"], message).status_code == 200
    assert_error(_pin(api, people["owner"], ids[50]), 409, "conflict")
    assert _pin(api, people["owner"], ids[7]).status_code == 200, "a pinned message pins again"
    _unpin(api, people["owner"], ids[7])
    assert _pin(api, people["owner"], ids[50]).status_code == 200
    assert len(_pins(api, people["member"], room)) == 50


def test_racing_pins_never_make_a_51st(api, staff, db):
    room, people = staff
    ids = _seed(db, room, people["member"], 60)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda message: _pin(Api(api.url), people["owner"], message), ids))
    assert sorted(answer.status_code for answer in answers) == [200] * 50 + [409] * 10
    assert len(_pins(api, people["member"], room)) == 50
    _assert_consistent(db, room, 50)


def _assert_consistent(db, room, count):
    """The room has `count` pinned messages, each holding one slot at its pin's time, and no other slot."""
    pinned = {m["_id"]: m["pinned_at"] for m in db.messages.find({"room": ObjectId(room), "pinned_at": {"$ne": None}})}
    slots = {pin["_id"]: pin["taken_at"] for pin in db.pins.find({"room": ObjectId(room)})}
    assert len(pinned) == count and slots == pinned


def test_racing_pins_of_one_message_hold_one_slot_broadcast_once_and_unpin_frees_it(api, staff, db, joined_pair):
    room, people = staff
    pair = joined_pair((people["owner"], people["member"]), room=room)
    ids = [_send(api, people["member"], room, f"m{i}")["id"] for i in range(3)]
    with ThreadPoolExecutor(12) as pool:
        for message in ids:  # each a race of its own: one message's pins all at once
            answers = list(pool.map(lambda _, message=message: _pin(Api(api.url), people["owner"], message), range(12)))
            assert [(answer.status_code, answer.json()["pinned"]) for answer in answers] == [(200, True)] * 12
    _assert_consistent(db, room, 3)
    for message in ids:
        assert _unpin(api, people["owner"], message).json()["pinned"] is False
    _assert_consistent(db, room, 0)
    for socket in pair.sockets:
        socket.settle()
        updates = [(update["id"], update["pinned"]) for update in socket.received("message_updated")]
        assert sorted(updates) == sorted([(message, True) for message in ids] + [(message, False) for message in ids])


def test_deleted_messages_are_not_pinned_and_give_their_place_back(api, staff, db):
    room, people = staff
    ids = _seed(db, room, people["member"], 51)
    for message in ids[:50]:
        _pin(api, people["owner"], message)
    assert api.delete(f"/api/messages/{ids[0]}", people["owner"].token).status_code == 204
    assert db.pins.find_one({"_id": ObjectId(ids[0])}) is None  # freed by the delete, not by the list's repair
    assert ids[0] not in _pins(api, people["member"], room)
    assert_error(_pin(api, people["owner"], ids[0]), 404, "not_found")
    assert_error(_unpin(api, people["owner"], ids[0]), 404, "not_found")
    assert _pin(api, people["owner"], ids[50]).status_code == 200, "the deleted message's place is free"
    assert db.messages.find_one({"_id": ObjectId(ids[0])})["pinned_at"] is None
    _assert_consistent(db, room, 50)
    assert_error(_pin(api, people["owner"], "f" * 24), 404, "not_found")
    assert_error(_pin(api, people["owner"], "nope"), 404, "not_found")


def test_archiving_ends_a_pin_and_frees_its_place(api, server, staff, db):
    room, people = staff
    message = _send(api, people["member"], room)["id"]
    assert _pin(api, people["owner"], message).json()["pinned"] is True
    job = subprocess.run(
        [sys.executable, "-m", "jobs.archive", "--older-than-days", "0", "--room", room],
        cwd=ROOT, env={**os.environ, "MONGODB_URI": server.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert db.pins.count_documents({}) == 0  # freed by the archiver, not by the list's repair
    assert _pins(api, people["member"], room) == []
    [archived] = api.get(f"/api/messages?room={room}&archived=true", people["member"].token).json()["messages"]
    assert archived["id"] == message and archived["archived"] is True and archived["pinned"] is False
    assert_error(_pin(api, people["owner"], message), 404, "not_found")


def test_deleting_a_room_removes_its_pins(api, staff, db):
    room, people = staff
    kept = api.post("/api/rooms", people["owner"].token, json={"name": "kept"}).json()["id"]
    for where in (room, kept):
        assert _pin(api, people["owner"], _send(api, people["owner"], where)["id"]).status_code == 200
    assert api.delete(f"/api/rooms/{room}", people["owner"].token).status_code == 204
    assert [pin["room"] for pin in db.pins.find()] == [ObjectId(kept)]


def _leave_slot(db, room, message_id, taken_at):
    """A slot as a crash leaves it: its message not marked (after a pin's first write, or before an unpin's second)."""
    free = set(range(50)) - {pin["slot"] for pin in db.pins.find({"room": ObjectId(room)})}
    db.pins.insert_one({"_id": ObjectId(message_id), "room": ObjectId(room), "slot": min(free), "taken_at": taken_at})


def test_a_slot_whose_message_is_not_pinned_is_freed_once_stale_and_taken_over_by_its_message(api, staff, db):
    room, people = staff
    ids = _seed(db, room, people["member"], 52)
    for message in ids[:48]:
        assert _pin(api, people["owner"], message).status_code == 200
    _leave_slot(db, room, ids[48], datetime.now(UTC))  # a pin under way: its place is held
    _leave_slot(db, room, ids[49], datetime.now(UTC) - STALE - timedelta(seconds=1))  # left by a crash
    assert _pin(api, people["owner"], ids[50]).status_code == 200, "the stale slot is free"
    assert_error(_pin(api, people["owner"], ids[51]), 409, "conflict")  # the slot of the pin under way is not
    assert ids[48] not in _pins(api, people["member"], room)
    assert _pin(api, people["owner"], ids[48]).status_code == 200, "a message's own slot is taken over"
    _assert_consistent(db, room, 50)
    _unpin(api, people["owner"], ids[48])
    _leave_slot(db, room, ids[51], datetime.now(UTC))
    assert api.delete(f"/api/messages/{ids[51]}", people["owner"].token).status_code == 204
    assert len(_pins(api, people["member"], room)) == 49  # the list frees a deleted message's slot at once
    _assert_consistent(db, room, 49)


def test_pin_slots_of_an_older_database_move_out_of_the_messages_at_start_up(server_factory, staff, db):
    room, people = staff
    archived, first, second, unpinned = _seed(db, room, people["member"], 4)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    db.messages.create_index(
        [("room", 1), ("pin_slot", 1)], unique=True, partialFilterExpression={"pin_slot": {"$gte": 0}}
    )
    for message, slot, minutes in ((archived, 7, 0), (first, 0, 1), (second, 3, 2)):
        pin = {"pin_slot": slot, "pinned_at": at + timedelta(minutes=minutes)}
        db.messages.update_one({"_id": ObjectId(message)}, {"$set": pin})
    # An archive run of the earlier version copied the pinned message with its slot.
    db.archived_messages.insert_one(db.messages.find_one_and_delete({"_id": ObjectId(archived)}))
    db.rooms.update_one({"_id": ObjectId(room)}, {"$set": {"archived_seq": 1}})
    other = Api(server_factory().url)  # clean_db dropped the migrations' record: this start-up runs it
    assert _pins(other, people["member"], room) == [second, first]
    assert {pin["_id"]: pin["slot"] for pin in db.pins.find()} == {ObjectId(first): 0, ObjectId(second): 3}
    assert db.messages.count_documents({"pin_slot": {"$exists": True}}) == 0
    assert db.archived_messages.count_documents({"pin_slot": {"$exists": True}}) == 0
    assert "room_1_pin_slot_1" not in db.messages.index_information()
    history = other.get(f"/api/messages?room={room}", people["member"].token).json()["messages"]
    assert [(m["id"], m["pinned"]) for m in history] == [(unpinned, False), (second, True), (first, True)]
    [old] = other.get(f"/api/messages?room={room}&archived=true", people["member"].token).json()["messages"]
    assert (old["id"], old["pinned"]) == (archived, False)
    assert _unpin(other, people["owner"], first).json()["pinned"] is False
    _assert_consistent(db, room, 1)
    assert db.migrations.find_one({"_id": "pin-slots"})
