"""Every query a conversation issues is answered from an index, on the embedded database as on MongoDB.

The services run in this process against the real database daemon; a command listener records
each query they send, and each is explained. SecantusDB's planner takes an index only for a
query on that index's fields alone, so a query that filters on one more field scans the
collection: this is what catches it. (Its explain reports a plain `_id` lookup as a scan, yet
answers it from the `_id` index: those are let through.)
"""

import threading

import pytest
from pymongo import monitoring

from model.membership import Role
from model.room import Room
from model.room_sanction import RoomSanction, Sanction
from model.user import User
from services import cluster, mentions, messages, pins, presence, reactions, read_state, rooms
from tests.support import plan_stages, store_messages
from utils.errors import Forbidden
from utils.search_keys import room_key
from utils.timefmt import utcnow

READS = ("find", "count", "distinct")


class Recorder(monitoring.CommandListener):
    """Keep the read commands sent while `recording` is set."""

    def __init__(self):
        self.commands, self.recording = [], threading.Event()

    def started(self, event):
        if self.recording.is_set() and event.command_name in READS:
            self.commands.append(event.command.copy())

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def recorder(in_process):
    recorder = Recorder()
    in_process(recorder)
    yield recorder
    # The senders' markers held in this process, now: left to their task, they would be written through the
    # connection of whatever test runs next.
    read_state.write_held_markers()


def _user(name):
    user = User(username=name, username_key=name, username_length=len(name), display_name=name, password_hash="x")
    user.created_at = utcnow()
    return user.save()


def _plan(db, command):
    """The stages of the plan the database answers a recorded command with."""
    explained = db.command({"explain": {key: value for key, value in command.items() if not key.startswith("$")}})
    return plan_stages(explained)


def _scans(db, command):
    """Whether the database answers a recorded command by reading the whole collection."""
    return any(stage["stage"] == "COLLSCAN" for stage in _plan(db, command))


def _assert_indexed(recorder, db):
    """Every read recorded (but plain `_id` lookups) was answered from an index."""
    recorder.recording.clear()
    scans = [c for c in recorder.commands if not _by_id(c) and _scans(db, c)]
    assert recorder.commands and not scans, scans


def _by_id(command):
    query = command.get("filter") or command.get("query") or {}
    return "_id" in query and not isinstance(query["_id"], dict)


def test_threads_and_mentions_read_only_from_indexes(recorder, db):
    alice, bob = _user("alice"), _user("bob")
    room = rooms.do_create_room(alice, "plans", "", False)
    rooms.add_member(room.id, bob.id, Role.MEMBER)
    recorder.recording.set()
    root, _ = messages.do_send_message(alice, room.id, f"@{bob.username} @room hello")
    first, _ = messages.do_send_message(bob, room.id, "first", reply_to=root.id)
    messages.do_send_message(bob, room.id, "second", reply_to=first.id)
    for cursor in ({}, {"before": first.id}, {"after": first.id}):
        messages.history(bob, room.id, 10, thread=root.id, **cursor)
    mentions.feed(bob, 10, None)
    messages.do_edit_message(alice, str(root.id), f"@{bob.username} edited")
    messages.do_delete_message(bob, str(first.id))
    _assert_indexed(recorder, db)


def test_reactions_and_pins_read_only_from_indexes(recorder, db):
    alice, bob = _user("alice"), _user("bob")
    room = rooms.do_create_room(alice, "pinboard", "", False)
    rooms.add_member(room.id, bob.id, Role.MEMBER)
    message, _ = messages.do_send_message(alice, room.id, "react to me, pin me")
    kept, _ = messages.do_send_message(alice, room.id, "stay pinned")
    recorder.recording.set()
    for user, add in ((bob, True), (alice, True), (bob, False), (alice, False)):
        reactions.do_react(user, str(message.id), "👍", add)
    pins.do_pin(alice, str(message.id))
    pins.list_pins(bob, room.id)
    pins.do_unpin(alice, str(message.id))
    pins.do_pin(alice, str(message.id))
    messages.do_delete_message(alice, str(message.id))  # gives the pin's slot back
    _assert_indexed(recorder, db)
    # The list reads the pins collection's index, then the messages by id: no index of the messages serves pins.
    pins.do_pin(alice, str(kept.id))
    recorder.commands.clear()
    recorder.recording.set()
    assert [pinned.id for pinned in pins.list_pins(bob, room.id)] == [kept.id]
    recorder.recording.clear()
    read = {c["find"]: _index_names(db, c) for c in recorder.commands if c.get("find") in ("pins", "messages")}
    assert read == {"pins": {"room_1_slot_1"}, "messages": {"_id_"}}


def _index_names(db, command):
    """The indexes a recorded command is answered from (None for a collection scan)."""
    return {stage.get("indexName") for stage in _plan(db, command) if stage["stage"] != "FETCH"}


def test_read_state_reads_only_from_indexes(recorder, db):
    alice, bob = _user("alice"), _user("bob")
    room = rooms.do_create_room(alice, "unread", "", False)
    rooms.add_member(room.id, bob.id, Role.MEMBER)
    first, _ = messages.do_send_message(alice, room.id, f"@{bob.username} look")
    mention = {"room": room.id, "user_id": alice.id, "time_stamp": utcnow(), "deleted": False, "mentions_room": True}
    mention["search_keys"] = [room_key(room.id)]
    store_messages(db, room.id, [mention] * 120)  # past the cap: the mention keys are read too
    stored = Room.objects(id=room.id).get()
    recorder.recording.set()
    rooms.describe(bob, [stored])  # what every Room view adds: lastMessageAt, both counts past the cap
    read_state.do_mark_read(bob, room.id, first.id)
    read_state.readers(alice, str(first.id))
    rooms.describe(alice, [stored])
    _assert_indexed(recorder, db)


def test_the_recheck_of_a_process_sockets_reads_only_from_indexes(recorder, db):
    """While Redis is down a process re-checks every socket it has (`cluster.recheck`): their tokens' revocations,
    their rooms, their memberships; every QUEUE_DOWN_RECHECK_SECONDS, so a read of the whole collection would cost
    the database that often."""
    alice, bob = _user("alice"), _user("bob")
    room, other = rooms.do_create_room(alice, "recheck", "", False), rooms.do_create_room(alice, "other", "", False)
    rooms.do_join_room(bob, room.id)
    sockets = {"alice-1": (alice, [room, other]), "bob-1": (bob, [room])}
    try:
        for sid, (user, joined) in sockets.items():
            presence.register(sid, user, {"jti": sid})
            for each in joined:
                presence.enter(sid, str(each.id))
        recorder.recording.set()
        cluster.recheck()
        assert {sid: presence.entry(sid).rooms for sid in sockets} == {
            sid: {str(each.id) for each in joined} for sid, (_, joined) in sockets.items()
        }
    finally:
        for sid in sockets:
            presence.unregister(sid)
    _assert_indexed(recorder, db)


def test_joins_read_only_from_indexes(recorder, db):
    """A first join (sanctions, the room's position, the membership), a join again, a banned user's join; the
    memberships of joins arriving together, read by room and by user."""
    alice, bob, carol = _user("alice"), _user("bob"), _user("carol")
    room, other = rooms.do_create_room(alice, "joins", "", False), rooms.do_create_room(alice, "other", "", False)
    RoomSanction(room=room.id, user=carol.id, kind=Sanction.BAN, by=alice.id, created_at=utcnow()).save()
    recorder.recording.set()
    assert rooms.do_join_room(bob, room.id)[1] == Role.MEMBER
    assert rooms.do_join_room(bob, room.id)[1] == Role.MEMBER
    with pytest.raises(Forbidden):
        rooms.do_join_room(carol, room.id)
    rooms.rooms_and_roles([(room.id, alice.id), (room.id, bob.id)])
    rooms.rooms_and_roles([(room.id, bob.id), (other.id, bob.id)])
    _assert_indexed(recorder, db)
