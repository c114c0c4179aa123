"""Read state through the live server: markers, unread and mention counts, read receipts, readers, their indexes."""

import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from model.message import RETIRED_INDEXES
from model.user import User
from services import read_state
from tests.support import Api, assert_error, register, store_messages
from tests.test_fanout import ordered
from tests.test_metrics import scrape
from utils.search_keys import mention_keys


def _room(api, owner, private=False):
    response = api.post("/api/rooms", owner.token, json={"name": f"reads-{uuid.uuid4().hex[:8]}", "private": private})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _join(api, user, room):
    response = api.post(f"/api/rooms/{room}/join", user.token)
    assert response.status_code == 200, response.text
    return response.json()


def _send(api, user, room, body="hello"):
    response = api.post("/api/send", user.token, json={"room": room, "messageBody": body})
    assert response.status_code == 201, response.text
    return response.json()


def _view(api, user, room):
    response = api.get(f"/api/rooms/{room}", user.token)
    assert response.status_code == 200, response.text
    return response.json()


def _read(api, user, room, message_id):
    return api.post(f"/api/rooms/{room}/read", user.token, json={"messageId": message_id})


def _counts(api, user, room):
    view = _view(api, user, room)
    return view["unreadCount"], view["mentionCount"]


def _store(db, room, author, count=1, **fields):
    """Messages written straight to the database (positions as the server gives them, and the mention keys it writes
    with an undeleted message); return their ids."""
    fields = {"deleted": False, "mentions": [], "mentions_room": False, **fields}
    if not fields["deleted"]:
        fields["search_keys"] = mention_keys(ObjectId(room), fields["mentions"], fields["mentions_room"])
    docs = [
        {"_id": ObjectId(), "room": ObjectId(room), "user_id": ObjectId(author.id), "user_name": author.username,
         "message_body": "stored", "time_stamp": datetime.now(UTC), **fields}
        for _ in range(count)
    ]  # fmt: skip
    store_messages(db, room, docs)
    return [str(doc["_id"]) for doc in docs]


def _until(check, timeout=5):
    """Poll until `check()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)
    return value


@pytest.fixture
def trio(api, make_user):
    """A public room of three members: its owner alice, bob and carol (who joined before anything was said)."""
    alice, bob, carol = make_user(), make_user(), make_user()
    room = _room(api, alice)
    _join(api, bob, room)
    _join(api, carol, room)
    return room, alice, bob, carol


def test_unread_counts_others_live_messages_after_the_marker(api, db, trio):
    room, alice, bob, _ = trio
    _, second, third = (_send(api, bob, room, f"bob {n}")["id"] for n in range(3))
    assert _counts(api, alice, room) == (3, 0)
    _store(db, room, alice)  # her own, without the send that would move her marker: never unread for her
    _store(db, room, bob, gap=True)  # a tombstone is no message
    deleted = _send(api, bob, room, "oops")["id"]
    assert _counts(api, alice, room) == (4, 0)
    assert api.delete(f"/api/messages/{deleted}", bob.token).status_code == 204
    assert _counts(api, alice, room) == (3, 0)
    state = _read(api, alice, room, second).json()
    assert state == {"room": room, "lastReadMessageId": second, "unreadCount": 1, "mentionCount": 0}
    view = _view(api, alice, room)
    assert (view["unreadCount"], view["lastReadMessageId"]) == (1, second)
    assert _read(api, alice, room, third).json()["unreadCount"] == 0


def test_mentions_count_those_naming_the_caller_or_everyone(api, db, trio):
    room, alice, bob, carol = trio
    _store(db, room, bob, 2, mentions=[ObjectId(alice.id)])
    _store(db, room, bob, mentions=[ObjectId(carol.id)])
    _store(db, room, bob, mentions_room=True)
    _store(db, room, bob, mentions=[ObjectId(alice.id)], mentions_room=True)  # counted once
    _store(db, room, bob, mentions=[ObjectId(alice.id)], deleted=True)
    _store(db, room, alice, mentions_room=True)  # her own @room
    assert _counts(api, alice, room) == (5, 4)
    assert _counts(api, carol, room) == (6, 4)  # her name, bob's two @room and alice's
    assert _counts(api, bob, room) == (1, 1)


def test_counts_stop_at_the_cap_and_mentions_beyond_the_first_hundred_still_count(api, db, trio):
    room, alice, bob, _ = trio
    _store(db, room, bob, 150)
    _store(db, room, bob, mentions=[ObjectId(alice.id)])
    _store(db, room, bob, mentions_room=True)
    assert read_state.UNREAD_CAP == 100
    assert _counts(api, alice, room) == (100, 2)
    _store(db, room, bob, 120, mentions_room=True)
    assert _counts(api, alice, room) == (100, 100)


def test_mentions_past_the_cap_count_only_others_in_this_room_after_the_marker(api, db, trio):
    room, alice, bob, _ = trio
    named = {"mentions": [ObjectId(alice.id)]}
    early = _store(db, room, bob, **named, mentions_room=True)[0]
    assert _read(api, alice, room, early).status_code == 200
    _store(db, room, bob, 120)
    _store(db, _room(api, bob), bob, 5, **named, mentions_room=True)  # another room's
    _store(db, room, bob, 3, **named)
    _store(db, room, alice, 2, mentions_room=True)  # her own
    assert _counts(api, alice, room) == (100, 3)


def test_a_database_from_before_loses_the_retired_mention_indexes(server_factory, db):
    """Indexes of an earlier version that every message paid for are dropped when a server starts."""
    db.messages.create_index([("room", 1), ("mentions", 1), ("seq", 1)], name=RETIRED_INDEXES[0])
    db.messages.create_index([("room", 1), ("mentions_room", 1), ("seq", 1)], name=RETIRED_INDEXES[1])
    db.messages.create_index([("mentions", 1), ("_id", -1)], name=RETIRED_INDEXES[2])
    partial = {"partialFilterExpression": {"mentions_room": True}}
    db.messages.create_index([("room", 1), ("mentions_room", 1), ("_id", -1)], name=RETIRED_INDEXES[3], **partial)
    server_factory()
    assert not set(RETIRED_INDEXES) & set(db.messages.index_information())


def test_the_marker_only_moves_forward(api, connect, trio):
    room, alice, bob, _ = trio
    watcher = connect(bob)
    watcher.call("join", {"room": room})
    older, newer = _send(api, bob, room, "one")["id"], _send(api, bob, room, "two")["id"]
    assert _read(api, alice, room, newer).json()["lastReadMessageId"] == newer
    watcher.wait_for("read_receipt", lambda e: e["messageId"] == newer)
    again = _read(api, alice, room, older)
    assert again.status_code == 200
    assert again.json() == {"room": room, "lastReadMessageId": newer, "unreadCount": 0, "mentionCount": 0}
    assert _read(api, alice, room, newer).json()["lastReadMessageId"] == newer  # the same: no move either
    watcher.settle()
    assert [e["messageId"] for e in watcher.received("read_receipt")] == [newer]


def test_the_receipts_of_reads_sent_at_once_never_go_back(api, connect, trio):
    """A client marks forty messages read as it scrolls, not waiting for acks: the markers only move forward, and so
    must the receipts the others get. Each receipt left as its handler ran: they went back (0, 38, 19, 5) in four
    runs of six."""
    room, alice, bob, _ = trio
    watcher, reader = ordered(connect(bob)), connect(alice)
    for client in (watcher, reader):
        assert client.call("join", {"room": room})["ok"] is True
    ids = [_send(api, bob, room, f"m{i}")["id"] for i in range(40)]
    acks = threading.Semaphore(0)
    for message_id in ids:
        reader.sio.emit("read", {"room": room, "messageId": message_id}, callback=lambda *_: acks.release())
    for _ in ids:
        assert acks.acquire(timeout=20)
    watcher.settle()
    got = [ids.index(e["messageId"]) for e in watcher.received("read_receipt") if e["userId"] == alice.id]
    assert got == sorted(got) and got[-1] == 39, got


def test_sending_moves_the_senders_marker_without_a_receipt(api, connect, trio):
    room, alice, bob, _ = trio
    watcher = connect(bob)
    watcher.call("join", {"room": room})
    _send(api, bob, room, "before alice speaks")
    assert _counts(api, alice, room) == (1, 0)
    sent = _send(api, alice, room, "hi all")["id"]
    # At once, though the move is written later (services/read_state.py): the process that stored it answers.
    view = _view(api, alice, room)
    assert (view["lastReadMessageId"], view["unreadCount"], view["mentionCount"]) == (sent, 0, 0)
    assert [r["id"] for r in api.get("/api/rooms", alice.token).json()["rooms"] if r["lastReadMessageId"] == sent]
    watcher.settle()
    assert watcher.received("read_receipt") == []


def test_the_senders_marker_is_stored_within_its_period_and_at_a_stop(server_factory, db):
    node = server_factory(SENT_MARKERS_MS=300)
    api = Api(node.url)
    owner = register(api)
    room = _room(api, owner)
    _send(api, owner, room, "first")
    senders = [register(api) for _ in range(2 * read_state._MOVES_PER_WRITE + 1)]  # more than one command
    sent = _send_from_each(api, db, room, senders)
    _until(lambda: {sender.id: _stored_marker(db, room, sender) for sender in senders} == sent)

    stopping = server_factory(SENT_MARKERS_MS=600_000)
    sent = _send_from_each(Api(stopping.url), db, room, senders)
    assert _stored_marker(db, room, senders[0])[0] < sent[senders[0].id][0]  # held: written in ten minutes
    stopping.proc.send_signal(signal.SIGTERM)
    stopping.proc.wait(20)
    assert {sender.id: _stored_marker(db, room, sender) for sender in senders} == sent


def _send_from_each(api, db, room, senders):
    """Each sender (joined first) sends a message to the room: {their id: (seq, id) of it}."""
    sent = {}
    for sender in senders:
        _join(api, sender, room)
        sent[sender.id] = _position(db, _send(api, sender, room, f"from {sender.username}"))
    return sent


def test_a_move_held_from_before_a_leave_is_not_the_next_memberships(server_factory, db):
    node = server_factory(SENT_MARKERS_MS=600_000)
    api = Api(node.url)
    owner, member = register(api), register(api)
    room = _room(api, owner)
    _join(api, member, room)
    first = _send(api, owner, room, "first")["id"]
    _send(api, member, room, "before leaving")  # held: written in ten minutes
    assert api.post(f"/api/rooms/{room}/leave", member.token).status_code == 204
    _send(api, owner, room, "while away")
    assert _join(api, member, room)["lastReadMessageId"] is None  # a new member has read nothing yet
    assert _view(api, member, room)["lastReadMessageId"] is None
    assert api.get(f"/api/messages/{first}/readers", owner.token).json() == {"readers": []}
    node.proc.send_signal(signal.SIGTERM)
    node.proc.wait(20)
    assert _stored_marker(db, room, member) == (None, None)


def test_a_stop_writes_the_moves_whose_write_is_in_flight(in_process, api, make_user, db):
    in_process()  # first: its start-up fills the join positions of memberships without one
    owner = make_user()
    room = _room(api, owner)
    message = _position(db, _send(api, owner, room))
    markers = read_state._SentMarkers()
    # The batch the flushing task took and is writing: the process ends before that task does.
    markers.writing.append({(ObjectId(room), ObjectId(owner.id)): (*message, datetime.now(UTC))})
    markers.write_held()
    assert _stored_marker(db, room, owner) == message


def test_reading_before_a_held_send_of_ones_own_sends_no_receipt(api, connect, trio):
    room, alice, bob, _ = trio
    mine, watcher = connect(alice), connect(bob)
    watcher.call("join", {"room": room})
    mine.call("join", {"room": room})
    older = _send(api, bob, room, "before alice speaks")["id"]
    sent = _send(api, alice, room, "hi all")["id"]  # her marker moves past `older`, held
    answer = _read(api, alice, room, older)
    assert answer.json() == {"room": room, "lastReadMessageId": sent, "unreadCount": 0, "mentionCount": 0}
    watcher.settle()
    mine.settle()
    assert watcher.received("read_receipt") == mine.received("read_receipt") == []


def _position(db, message):
    """(seq, id) of a message as the API answered it."""
    return db.messages.find_one({"_id": ObjectId(message["id"])})["seq"], ObjectId(message["id"])


def _stored_marker(db, room, user):
    stored = db.memberships.find_one({"room": ObjectId(room), "user": ObjectId(user.id)})
    return stored.get("read_seq"), stored.get("read_message")


def test_a_burst_of_sends_leaves_the_marker_on_the_last(api, connect, trio):
    room, alice, _, _ = trio
    sender = connect(alice)
    acks = [sender.call("message", {"room": room, "messageBody": f"burst {n}"}) for n in range(20)]
    last = acks[-1]["message"]["id"]
    _until(lambda: _view(api, alice, room)["lastReadMessageId"] == last)


def test_a_new_member_of_a_busy_room_counts_from_when_they_joined(api, db, make_user):
    owner, newcomer, added = make_user(), make_user(), make_user()
    room = _room(api, owner)
    _store(db, room, owner, 40)
    joined = _join(api, newcomer, room)
    assert (joined["unreadCount"], joined["mentionCount"], joined["lastReadMessageId"]) == (0, 0, None)
    assert api.put(f"/api/rooms/{room}/members/{added.id}", owner.token, json={"role": "member"}).status_code == 200
    assert _counts(api, added, room) == (0, 0)
    _send(api, owner, room, "welcome")
    assert _counts(api, newcomer, room) == _counts(api, added, room) == (1, 0)
    member = db.memberships.find_one({"room": ObjectId(room), "user": ObjectId(newcomer.id)})
    assert member["joined_seq"] == 40 and "read_seq" not in member


def test_memberships_older_than_read_state_count_from_the_start_up(server_factory, db, make_user, api):
    owner, member = make_user(), make_user()
    room = _room(api, owner)
    _join(api, member, room)
    _store(db, room, owner, 30)
    db.memberships.update_many({"room": ObjectId(room)}, {"$unset": {"joined_seq": "", "read_seq": ""}})
    assert _counts(api, member, room) == (30, 0)  # what the migration is for
    other = Api(server_factory().url)  # clean_db dropped the migrations' record: this start-up runs it
    assert _counts(other, member, room) == (0, 0)
    assert db.memberships.find_one({"room": ObjectId(room), "user": ObjectId(member.id)})["joined_seq"] == 30


def test_read_errors(api, make_user, db, trio):
    room, alice, bob, _ = trio
    elsewhere = _room(api, bob)
    foreign = _send(api, bob, elsewhere, "not in alice's room")["id"]
    assert_error(_read(api, alice, room, foreign), 404, "not_found")
    assert_error(_read(api, alice, room, str(ObjectId())), 404, "not_found")
    error = assert_error(_read(api, alice, room, "nope"), 400, "validation_error")
    assert "messageId" in error["details"]
    assert_error(api.post(f"/api/rooms/{room}/read", alice.token, json={}), 400, "validation_error")
    message = _send(api, alice, room, "mine")["id"]
    assert_error(_read(api, make_user(), room, message), 403, "forbidden")  # may read the public room, not a member
    secret = _room(api, bob, private=True)
    hidden = _send(api, bob, secret, "private")["id"]
    assert_error(_read(api, alice, secret, hidden), 404, "not_found")
    gap = _store(db, room, bob, gap=True)[0]
    assert_error(_read(api, alice, room, gap), 404, "not_found")


def test_an_archived_message_may_be_marked_and_never_counts(api, db, trio):
    room, alice, bob, _ = trio
    old = _store(db, room, bob, 3)
    db.archived_messages.insert_many(list(db.messages.find({"room": ObjectId(room)})))
    db.messages.delete_many({"room": ObjectId(room)})
    db.rooms.update_one({"_id": ObjectId(room)}, {"$set": {"archived_seq": 3}})
    db.memberships.update_many({"room": ObjectId(room)}, {"$set": {"joined_seq": 0}})
    assert _counts(api, alice, room) == (0, 0)
    assert _view(api, alice, room)["lastMessageAt"] is None
    live = _send(api, bob, room, "live")["id"]
    assert _read(api, alice, room, old[1]).json() == {
        "room": room, "lastReadMessageId": old[1], "unreadCount": 1, "mentionCount": 0
    }  # fmt: skip
    assert _read(api, alice, room, live).json()["unreadCount"] == 0


def test_last_message_at_is_the_newest_live_message_for_members_and_others(api, db, make_user, trio):
    room, alice, bob, _ = trio
    outsider = make_user()
    assert _view(api, alice, room)["lastMessageAt"] is None
    sent = _send(api, bob, room, "latest")
    _store(db, room, bob, gap=True)
    view = _view(api, outsider, room)
    assert view["lastMessageAt"] == sent["timeStamp"]
    assert (view["unreadCount"], view["mentionCount"], view["lastReadMessageId"]) == (0, 0, None)
    listed = {r["id"]: r for r in api.get("/api/rooms", alice.token).json()["rooms"]}[room]
    assert (listed["lastMessageAt"], listed["unreadCount"]) == (sent["timeStamp"], 1)


def test_the_read_event_answers_as_rest_does(api, connect, trio):
    room, alice, bob, _ = trio
    message = _send(api, bob, room, "over the socket")["id"]
    socket = connect(alice)
    ack = socket.call("read", {"room": room, "messageId": message})
    assert ack == {"ok": True, "room": room, "lastReadMessageId": message, "unreadCount": 0, "mentionCount": 0}
    assert socket.call("read", {"room": room})["error"]["code"] == "validation_error"
    assert socket.call("read", {"room": str(ObjectId()), "messageId": message})["error"]["code"] == "not_found"
    general = socket.call("read", {"messageId": message})  # no room: general, where the message is not
    assert general["ok"] is False and general["error"]["code"] == "not_found"


def test_receipts_reach_a_small_room_and_every_socket_of_the_reader(api, connect, trio):
    room, alice, bob, carol = trio
    message = _send(api, bob, room, "read me")["id"]
    in_room, elsewhere, other = connect(bob), connect(alice), connect(carol)
    in_room.call("join", {"room": room})
    reader = connect(alice)
    assert reader.call("read", {"room": room, "messageId": message})["ok"] is True
    receipt = {"room": room, "userId": alice.id, "userName": alice.username, "messageId": message}
    assert in_room.wait_for("read_receipt") == receipt
    assert elsewhere.wait_for("read_receipt") == receipt  # not joined to the room: her own channel
    assert reader.wait_for("read_receipt") == receipt
    other.settle()
    assert other.received("read_receipt") == []  # carol's socket never joined the room


@pytest.fixture
def nodes(server_factory, redis_url):
    """Two processes sharing Redis, where a room above two members gets no receipts."""
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"chat-{uuid.uuid4().hex[:8]}", "READ_RECEIPTS_MAX_MEMBERS": 2}
    return server_factory(**env), server_factory(**env)


def test_receipts_cross_processes_and_stop_at_the_room_size_limit(nodes, connect):
    a_node, b_node = nodes
    api_a, api_b = Api(a_node.url), Api(b_node.url)
    alice, bob, carol = register(api_a), register(api_a), register(api_a)
    room = _room(api_a, alice)
    _join(api_a, bob, room)
    watcher, alice_elsewhere = connect(bob, url=b_node.url), connect(alice, url=b_node.url)
    watcher.call("join", {"room": room})
    first = _send(api_a, bob, room, "one")["id"]
    assert _read(api_a, alice, room, first).status_code == 200  # two members: the room hears it
    receipt = {"room": room, "userId": alice.id, "userName": alice.username, "messageId": first}
    assert watcher.wait_for("read_receipt") == receipt
    assert alice_elsewhere.wait_for("read_receipt") == receipt
    _join(api_b, carol, room)  # three members: above the limit
    second = _send(api_b, bob, room, "two")["id"]
    assert _read(api_a, alice, room, second).status_code == 200
    assert alice_elsewhere.wait_for("read_receipt", lambda e: e["messageId"] == second)["userId"] == alice.id
    watcher.settle()
    assert [e["messageId"] for e in watcher.received("read_receipt")] == [first]


def test_a_member_s_receipts_never_go_back_when_they_read_through_both_processes_at_once(nodes, connect):
    """A member reads forty messages from two devices, one on each process, not waiting for acks: each process sends
    its own receipts to its sockets at once and the other's through Redis, so a socket met the two in no set order."""
    api = Api(nodes[0].url)
    alice, bob = register(api), register(api)
    room = _room(api, alice)
    _join(api, bob, room)
    watchers = [ordered(connect(bob, url=node.url)) for node in nodes]
    readers = [connect(alice, url=node.url) for node in nodes]
    for client in watchers + readers:
        assert client.call("join", {"room": room})["ok"] is True
    ids = [_send(api, bob, room, f"m{i}")["id"] for i in range(40)]
    acks = threading.Semaphore(0)
    for i, message_id in enumerate(ids):
        readers[i % 2].sio.emit("read", {"room": room, "messageId": message_id}, callback=lambda *_: acks.release())
    for _ in ids:
        assert acks.acquire(timeout=20)
    for watcher in watchers:
        watcher.wait_for("read_receipt", lambda e: e["messageId"] == ids[-1], timeout=10)
        watcher.settle()
        got = [ids.index(e["messageId"]) for e in watcher.received("read_receipt") if e["userId"] == alice.id]
        assert got == sorted(got) and got[-1] == 39, got


def test_readers_miss_no_move_written_while_they_are_read(in_process, api, make_user, db, monkeypatch):
    in_process()
    owner, member = make_user(), make_user()
    room = _room(api, owner)
    _join(api, member, room)
    message = _send(api, owner, room, "read by a later sender")["id"]
    later = _position(db, _send(api, member, room, "after it"))
    mark = (*later, datetime.now(UTC))

    def held_then_written(room_id):  # this process's write of the move ends as the held moves are looked at
        stored = dict(zip(("read_seq", "read_message", "read_at"), mark, strict=True))
        db.memberships.update_one({"room": ObjectId(room), "user": ObjectId(member.id)}, {"$set": stored})
        return {ObjectId(member.id): mark}

    monkeypatch.setattr(read_state._sent, "held_in", held_then_written)
    found = read_state.readers(User.objects(id=owner.id).get(), message)
    assert [str(reader.user_id) for reader in found] == [member.id]


def test_readers_are_members_past_the_message_but_its_author(api, make_user, trio):
    room, alice, bob, carol = trio
    message = _send(api, alice, room, "who saw this?")["id"]
    assert api.get(f"/api/messages/{message}/readers", bob.token).json() == {"readers": []}
    _read(api, bob, room, message)
    later = _send(api, carol, room, "me too")["id"]  # carol's marker passes it as she sends, read at once
    readers = api.get(f"/api/messages/{message}/readers", make_user().token).json()["readers"]  # a public room
    assert [(r["userId"], r["userName"]) for r in readers] == [(bob.id, bob.username), (carol.id, carol.username)]
    assert all(r["readAt"].endswith("Z") for r in readers)
    assert [r["userId"] for r in api.get(f"/api/messages/{later}/readers", bob.token).json()["readers"]] == []
    assert_error(api.get(f"/api/messages/{ObjectId()}/readers", bob.token), 404, "not_found")
    assert_error(api.get("/api/messages/nope/readers", bob.token), 404, "not_found")
    secret = _room(api, bob, private=True)
    hidden = _send(api, bob, secret, "private")["id"]
    assert_error(api.get(f"/api/messages/{hidden}/readers", alice.token), 404, "not_found")


def test_readers_past_the_cap_are_the_earliest_thousand(api, db, make_user):
    """With more readers than are listed, those listed are the first whose markers moved, not the first found."""
    owner = make_user()
    room = _room(api, owner)
    seq, message = _position(db, _send(api, owner, room, "read by a crowd"))
    crowd = [ObjectId() for _ in range(read_state.READERS_CAP + 1)]
    at = datetime.now(UTC).replace(microsecond=0).timestamp()
    db.users.insert_many(
        {"_id": user, "username": f"crowd{n}", "username_key": f"crowd{n}", "username_length": 6 + len(str(n))}
        for n, user in enumerate(crowd)
    )
    # Markers further along moved earlier: the index's order (room, position) is the reverse of the readers' order.
    db.memberships.insert_many(
        {
            "room": ObjectId(room), "user": user, "role": "member", "joined_seq": 0,
            "read_seq": seq + 1 + n, "read_message": message, "read_at": datetime.fromtimestamp(at - n, UTC),
        }
        for n, user in enumerate(crowd)
    )  # fmt: skip
    readers = api.get(f"/api/messages/{message}/readers", owner.token).json()["readers"]
    assert [reader["userId"] for reader in readers] == [str(user) for user in reversed(crowd[1:])]


def _plan(db, collection, query):
    """The stages of the winning plan of a find, outermost first, with the index an IXSCAN uses."""
    explained = db.command("explain", {"find": collection, "filter": query}, verbosity="executionStats")
    stage, stages = explained["queryPlanner"]["winningPlan"], []
    while stage:
        stages.append(f"{stage['stage']}:{stage['indexName']}" if "indexName" in stage else stage["stage"])
        stage = stage.get("inputStage")
    return stages, explained["executionStats"]["totalDocsExamined"]


def test_counts_read_only_their_window_and_markers_move_by_their_unique_key(server, db, make_user, api):
    """Beside tests/test_query_plans.py (no read scans): how much a window reads, and the writes' filters."""
    owner, reader = make_user(), make_user()
    room = _room(api, owner)
    _store(db, room, owner, 500)
    _store(db, room, owner, 5, mentions=[ObjectId(reader.id)])
    _store(db, room, owner, 5, mentions_room=True)
    _store(db, _room(api, owner), owner, 500)  # another room's messages, never read
    room_id, reader_id = ObjectId(room), ObjectId(reader.id)
    assert _plan(db, "messages", read_state.window(room_id, 400, 500)) == (["FETCH", "IXSCAN:room_1_seq_1"], 100)
    since = ObjectId.from_datetime(datetime.now(UTC) - read_state.ID_MARGIN)
    everyone, named = read_state.mention_queries(room_id, reader_id, since)
    assert _plan(db, "messages", everyone) == (["FETCH", "IXSCAN:search_keys_1__id_-1"], 5)
    assert _plan(db, "messages", named) == (["FETCH", "IXSCAN:search_keys_1__id_-1"], 5)
    readers = {"room": room_id, "read_seq": {"$gte": 3}}
    assert _plan(db, "memberships", readers)[0] == ["FETCH", "IXSCAN:room_1_read_seq_1"]
    marker = {"room": room_id, "user": reader_id}
    assert _plan(db, "memberships", marker)[0] == ["FETCH", "IXSCAN:room_1_user_1"]


def test_a_page_of_fifty_rooms_costs_a_few_queries_a_room(server_factory, db):
    node = server_factory()
    api = Api(node.url)
    owner, reader = register(api), register(api)
    rooms = [_room(api, owner) for _ in range(50)]
    for room in rooms:
        _join(api, reader, room)
        _store(db, room, owner, read_state.UNREAD_CAP + 1, mentions_room=True)  # each over the cap, in both counts
    before = scrape(node.url)
    page = api.get("/api/rooms?limit=50", reader.token).json()["rooms"]
    after = scrape(node.url)
    assert {r["id"] for r in page} == set(rooms)
    assert all((r["unreadCount"], r["mentionCount"]) == (100, 100) for r in page)
    commands = after.total("chat_db_command_seconds_count") - before.total("chat_db_command_seconds_count")
    assert commands <= 4 * 50 + 10, commands
