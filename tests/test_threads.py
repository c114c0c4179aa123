"""Threads: replies name their root, roots count their live replies, thread pages page one thread."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from tests.support import assert_error, store_messages


def _send(api, user, body, room=None, **extra):
    payload = {"messageBody": body, **({"room": room} if room else {}), **extra}
    response = api.post("/api/send", user.token, json=payload)
    assert response.status_code == 201, response.text
    return response.json()


def _thread(api, user, root, room=None, **query):
    params = {"thread": root, **({"room": room} if room else {}), **query}
    response = api.get("/api/messages", user.token, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_reply_names_the_root_and_the_room_hears_the_root_change(joined_pair, api):
    pair = joined_pair()
    alice, bob = pair.users
    root = _send(api, alice, "lunch?")
    reply = _send(api, bob, "yes", replyTo=root["id"])
    assert reply["replyTo"] == root["id"] and reply["replyCount"] == 0
    updated = pair.sockets[0].wait_for("message_updated", lambda m: m["id"] == root["id"])
    assert updated["replyCount"] == 1 and updated["lastReplyAt"] == reply["timeStamp"]
    names = [name for name, data in pair.sockets[0].events if name in ("message", "message_updated")]
    assert names == ["message", "message", "message_updated"], "the reply comes before the root's new count"
    history = api.get("/api/messages", alice.token).json()["messages"]
    assert [m["id"] for m in history] == [reply["id"], root["id"]], "replies are messages of the room"
    assert history[1]["replyCount"] == 1


def test_a_reply_to_a_reply_joins_the_roots_thread(api, make_user):
    user = make_user()
    root = _send(api, user, "root")
    first = _send(api, user, "first", replyTo=root["id"])
    second = _send(api, user, "second", replyTo=first["id"])
    assert second["replyTo"] == root["id"]
    page = _thread(api, user, root["id"])
    assert [m["id"] for m in page["messages"]] == [second["id"], first["id"]] and page["nextCursor"] is None


def test_reply_over_the_socket(joined_pair, api):
    pair = joined_pair()
    root = _send(api, pair.users[0], "root")
    ack = pair.sockets[1].call("message", {"messageBody": "socket reply", "replyTo": root["id"]})
    assert ack["ok"] is True and ack["message"]["replyTo"] == root["id"]
    pair.sockets[0].wait_for("message_updated", lambda m: m["id"] == root["id"] and m["replyCount"] == 1)
    refused = pair.sockets[1].call("message", {"messageBody": "x", "replyTo": str(ObjectId())})
    assert refused == {"ok": False, "error": refused["error"]} and refused["error"]["code"] == "not_found"


def test_replies_only_to_live_messages_of_the_same_room(api, make_user):
    user = make_user()
    other = api.post("/api/rooms", user.token, json={"name": "elsewhere"}).json()
    foreign = _send(api, user, "over there", room=other["id"])
    gone = _send(api, user, "soon deleted")
    assert api.delete(f"/api/messages/{gone['id']}", user.token).status_code == 204

    def reply(to):
        return api.post("/api/send", user.token, json={"messageBody": "x", "replyTo": to})

    for missing in (foreign["id"], str(ObjectId()), gone["id"]):
        assert_error(reply(missing), 404, "not_found")
    for bad in ("nope", 5, {"$gt": ""}):
        assert_error(reply(bad), 400, "validation_error")
    assert [m["id"] for m in api.get("/api/messages", user.token).json()["messages"]] == [gone["id"]], "nothing stored"


def test_concurrent_replies_all_count(api, make_user):
    users = [make_user() for _ in range(4)]
    root = _send(api, users[0], "count us")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _send(api, users[i % 4], f"r{i}", replyTo=root["id"]), range(16)))
    stored = api.get("/api/messages", users[0].token, params={"limit": 100}).json()["messages"]
    assert next(m for m in stored if m["id"] == root["id"])["replyCount"] == 16


def test_deleting_replies_counts_down_and_moves_the_last_reply_time_back(joined_pair, api):
    pair = joined_pair()
    alice = pair.users[0]
    root = _send(api, alice, "root")
    first = _send(api, alice, "first", replyTo=root["id"])
    second = _send(api, alice, "second", replyTo=root["id"])
    assert api.delete(f"/api/messages/{second['id']}", alice.token).status_code == 204
    updated = pair.sockets[1].wait_for("message_updated", lambda m: m["id"] == root["id"] and m["replyCount"] == 1)
    assert updated["lastReplyAt"] == first["timeStamp"]
    assert api.delete(f"/api/messages/{first['id']}", alice.token).status_code == 204
    updated = pair.sockets[1].wait_for("message_updated", lambda m: m["id"] == root["id"] and m["replyCount"] == 0)
    assert updated["lastReplyAt"] is None
    page = _thread(api, alice, root["id"])["messages"]
    assert [(m["id"], m["deleted"]) for m in page] == [(second["id"], True), (first["id"], True)], "still in place"


def test_thread_pages_with_cursors_both_ways(api, make_user):
    user = make_user()
    root = _send(api, user, "root")
    replies = []
    for i in range(7):
        _send(api, user, f"noise {i}")
        replies.append(_send(api, user, f"reply {i}", replyTo=root["id"])["id"])
    newest = _thread(api, user, root["id"], limit=3)
    assert [m["id"] for m in newest["messages"]] == replies[:-4:-1]
    older = _thread(api, user, root["id"], limit=3, before=newest["nextCursor"])
    assert [m["id"] for m in older["messages"]] == replies[3:0:-1]
    last = _thread(api, user, root["id"], limit=3, before=older["nextCursor"])
    assert [m["id"] for m in last["messages"]] == replies[:1] and last["nextCursor"] is None
    forward = _thread(api, user, root["id"], limit=4, after=replies[0])
    assert [m["id"] for m in forward["messages"]] == replies[1:5] and forward["nextCursor"] == replies[4]
    rest = _thread(api, user, root["id"], limit=4, after=forward["nextCursor"])
    assert [m["id"] for m in rest["messages"]] == replies[5:] and rest["nextCursor"] is None


def test_thread_of_an_unknown_or_foreign_root_is_not_found(api, make_user):
    user = make_user()
    other = api.post("/api/rooms", user.token, json={"name": "other-room"}).json()
    foreign = _send(api, user, "there", room=other["id"])
    for root in (str(ObjectId()), foreign["id"]):
        assert_error(api.get("/api/messages", user.token, params={"thread": root}), 404, "not_found")
    assert_error(api.get("/api/messages", user.token, params={"thread": "zz"}), 400, "validation_error")


def test_a_thread_page_stops_below_a_reply_still_being_written(api, make_user, db):
    """A reply stored above a position still being written stays hidden until that position is stored."""
    user = make_user()
    root = _send(api, user, "root")
    room = ObjectId(root["room"])
    db.room_counters.update_one({"_id": room}, {"$inc": {"seq": 1}})  # a writer took a position, has not stored it
    pending = db.room_counters.find_one({"_id": room})["seq"]
    late = _send(api, user, "late reply", replyTo=root["id"])
    assert _thread(api, user, root["id"])["messages"] == []
    assert _thread(api, user, root["id"], after=root["id"])["messages"] == []
    db.messages.insert_one(
        {"room": room, "seq": pending, "user_id": ObjectId(user.id), "user_name": user.username,
         "message_body": "slow", "time_stamp": datetime.now(UTC), "deleted": False, "reply_to": ObjectId(root["id"]),
         "is_reply": True}
    )  # fmt: skip
    page = _thread(api, user, root["id"], after=root["id"])["messages"]
    assert [m["messageBody"] for m in page] == ["slow", "late reply"] and page[1]["id"] == late["id"]


def test_an_old_hole_does_not_hide_a_thread(api, make_user, db):
    user = make_user()
    room = api.get("/api/rooms/general", user.token).json()["id"]
    old = {"room": ObjectId(room), "user_id": ObjectId(user.id), "user_name": "x", "message_body": "old"}
    old["time_stamp"] = datetime.now(UTC) - timedelta(minutes=5)
    store_messages(db, room, [old])
    db.room_counters.update_one({"_id": ObjectId(room)}, {"$inc": {"seq": 1}})  # a writer that died long ago
    store_messages(db, room, [old])
    root = _send(api, user, "root")
    reply = _send(api, user, "reply", replyTo=root["id"])
    assert [m["id"] for m in _thread(api, user, root["id"])["messages"]] == [reply["id"]]


def test_archived_threads_stay_readable(server, api, make_user, db):
    from tests.test_archive import _job

    user = make_user()
    room = api.get("/api/rooms/general", user.token).json()["id"]
    when = datetime.now(UTC) - timedelta(days=40)
    ids = [ObjectId.from_datetime(when + timedelta(seconds=i)) for i in range(4)]
    base = {"room": ObjectId(room), "user_id": ObjectId(user.id), "user_name": user.username, "deleted": False}
    docs = [{**base, "_id": ids[0], "message_body": "root", "time_stamp": when, "reply_count": 2}]
    replies = {"time_stamp": when, "reply_to": ids[0], "is_reply": True}
    docs += [{**base, "_id": ids[i], "message_body": f"r{i}", **replies} for i in (1, 2)]
    docs += [{**base, "_id": ids[3], "message_body": "other", "time_stamp": when}]
    store_messages(db, room, docs)
    live_reply = _send(api, user, "still live", replyTo=str(ids[1]))
    assert _job(server).returncode == 0
    assert db.messages.count_documents({"room": ObjectId(room)}) == 1
    archived = _thread(api, user, str(ids[0]), archived="true")["messages"]
    assert [m["id"] for m in archived] == [str(ids[2]), str(ids[1])] and all(m["archived"] for m in archived)
    assert archived[0]["replyTo"] == str(ids[0])
    assert [m["id"] for m in _thread(api, user, str(ids[0]))["messages"]] == [live_reply["id"]]


def test_only_replies_enter_the_thread_index(api, make_user, db):
    user = make_user()
    root = _send(api, user, "root")
    reply = _send(api, user, "reply", replyTo=root["id"])
    _send(api, user, "plain")
    indexed = db.messages.find({"room": ObjectId(root["room"])}, {"_id": 1}).hint("is_reply_1_room_1_reply_to_1_seq_1")
    assert [str(doc["_id"]) for doc in indexed] == [reply["id"]]


def test_replies_stored_before_they_were_flagged_are_in_their_thread_after_a_restart(
    api, make_user, db, server_factory
):
    user = make_user()
    root = _send(api, user, "root")
    room = ObjectId(root["room"])
    old = {"_id": ObjectId(), "room": room, "user_id": ObjectId(user.id), "user_name": user.username,
           "message_body": "old reply", "time_stamp": datetime.now(UTC), "deleted": False,
           "reply_to": ObjectId(root["id"])}  # fmt: skip
    store_messages(db, root["room"], [old])
    archived = {**old, "_id": ObjectId(), "room": ObjectId(), "seq": 1}
    db.archived_messages.insert_one(archived)
    assert _thread(api, user, root["id"])["messages"] == []  # what the migration is for
    restarted = type(api)(server_factory().url)  # clean_db dropped the migrations' record: this start-up runs it
    assert [m["id"] for m in _thread(restarted, user, root["id"])["messages"]] == [str(old["_id"])]
    assert db.archived_messages.find_one({"_id": archived["_id"]})["is_reply"] is True
    assert db.migrations.find_one({"_id": "reply-flags"})
