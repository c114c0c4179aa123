"""Mentions: who a body names, who hears of it (`notification`, on any process), the mentions feed."""

from datetime import UTC, datetime

from bson import ObjectId

from services import mentions
from tests.support import assert_error, store_messages
from utils.search_keys import keys_of


def _send(api, user, body, room=None):
    response = api.post("/api/send", user.token, json={"messageBody": body, **({"room": room} if room else {})})
    assert response.status_code == 201, response.text
    return response.json()


def _room(api, owner, name, members=(), private=False):
    room = api.post("/api/rooms", owner.token, json={"name": name, "private": private}).json()
    for member in members:
        added = api.put(f"/api/rooms/{room['id']}/members/{member.id}", owner.token, json={"role": "member"})
        assert added.status_code == 200, added.text
    return room["id"]


def test_a_member_named_is_mentioned_and_told_on_every_socket_without_joining(api, make_user, connect):
    alice, bob, carol = make_user(), make_user(), make_user()
    room = _room(api, alice, "team", members=[bob])
    bobs = [connect(bob), connect(bob)]  # neither joined the room
    carols = connect(carol)
    message = _send(api, alice, f"hey @{bob.username.upper()} and @{carol.username}, see mail@{bob.username}", room)
    assert message["mentions"] == [bob.id], "carol is no member; an address is no mention"
    assert message["mentionsRoom"] is False
    for socket in bobs:
        told = socket.wait_for("notification")
        assert told == {"reason": "mention", "room": room, "message": message}
    carols.settle()
    assert carols.received("notification") == []


def test_a_name_at_the_end_of_a_sentence_and_the_authors_own(api, make_user, connect):
    alice, bob = make_user(), make_user()
    room = _room(api, alice, "punct", members=[bob])
    own = connect(alice)
    message = _send(api, alice, f"thanks @{bob.username}. and @{alice.username}!", room)
    assert sorted(message["mentions"]) == sorted([bob.id, alice.id])
    own.settle()
    assert own.received("notification") == [], "nobody is told of their own message"


def test_room_and_here_count_only_from_managers(api, make_user, connect):
    owner, member, other = make_user(), make_user(), make_user()
    room = _room(api, owner, "announcements", members=[member, other])
    sockets = {user.id: connect(user) for user in (owner, member, other)}
    plain = _send(api, member, "@room anyone?", room)
    assert plain["mentionsRoom"] is False and plain["mentions"] == []
    loud = _send(api, owner, "@here standup now", room)
    assert loud["mentionsRoom"] is True
    for user in (member, other):
        told = sockets[user.id].wait_for("notification")
        assert told["message"]["id"] == loud["id"] and told["reason"] == "mention"
    sockets[owner.id].settle()
    assert sockets[owner.id].received("notification") == []
    assert len(sockets[member.id].received("notification")) == 1, "the member's own @room told nobody"


def test_an_edit_recomputes_mentions_and_tells_only_the_newly_named(api, make_user, connect):
    alice, bob, carol = make_user(), make_user(), make_user()
    room = _room(api, alice, "edits", members=[bob, carol])
    bobs, carols = connect(bob), connect(carol)
    message = _send(api, alice, f"@{bob.username} look", room)
    bobs.wait_for("notification")
    edit = api.patch(
        f"/api/messages/{message['id']}", alice.token, json={"messageBody": f"@{bob.username} @{carol.username}"}
    )
    assert edit.status_code == 200 and sorted(edit.json()["mentions"]) == sorted([bob.id, carol.id])
    assert carols.wait_for("notification")["message"]["mentions"] == edit.json()["mentions"]
    bobs.settle()
    assert len(bobs.received("notification")) == 1, "bob was named before: not told twice"
    cleared = api.patch(f"/api/messages/{message['id']}", alice.token, json={"messageBody": "never mind"}).json()
    assert cleared["mentions"] == [] and cleared["mentionsRoom"] is False


def test_a_dm_tells_the_other_participants_of_every_message(api, make_user, connect):
    alice, bob, carol = make_user(), make_user(), make_user()
    room = api.post("/api/dms", alice.token, json={"userIds": [bob.id]}).json()["id"]
    alices, bobs, carols = connect(alice), connect(bob), connect(carol)
    message = _send(api, alice, f"psst @{bob.username}", room)
    assert bobs.wait_for("notification") == {"reason": "dm", "room": room, "message": message}
    for socket in (alices, bobs, carols):
        socket.settle()
    assert len(bobs.received("notification")) == 1, "one event a message, even when it also names them"
    assert alices.received("notification") == carols.received("notification") == []
    api.patch(f"/api/messages/{message['id']}", alice.token, json={"messageBody": "edited"})
    bobs.settle()
    assert len(bobs.received("notification")) == 1, "an edit tells nobody in a DM"


def test_notifications_cross_processes(server_factory, redis_url, make_user, connect, api):
    first, second = (server_factory(REDIS_URL=redis_url) for _ in range(2))
    alice, bob = make_user(), make_user()
    room = _room(api, alice, "across", members=[bob])
    listener = connect(bob, url=second.url)
    message = _send(type(api)(first.url), alice, f"@{bob.username} over here", room)
    assert listener.wait_for("notification")["message"]["id"] == message["id"]


def _feed(api, user, **query):
    response = api.get("/api/mentions", user.token, params=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_mentions_feed_pages_newest_first_and_only_from_rooms_still_readable(api, make_user):
    alice, bob = make_user(), make_user()
    public = _room(api, alice, "public-room", members=[bob])
    private = _room(api, alice, "private-room", members=[bob], private=True)
    stranger = _room(api, alice, "no-bob-here")
    ids = [_send(api, alice, f"@{bob.username} {i}", public)["id"] for i in range(3)]
    hidden = _send(api, alice, f"@{bob.username} secret", private)["id"]
    loud = _send(api, alice, "@room everyone", public)["id"]
    _send(api, alice, "@room not bob's room", stranger)
    gone = _send(api, alice, f"@{bob.username} deleted", public)["id"]
    assert api.delete(f"/api/messages/{gone}", alice.token).status_code == 204
    page = _feed(api, bob, limit=2)
    assert [m["id"] for m in page["messages"]] == [loud, hidden]
    rest = _feed(api, bob, limit=10, before=page["nextCursor"])
    assert [m["id"] for m in rest["messages"]] == ids[::-1] and rest["nextCursor"] is None
    assert api.delete(f"/api/rooms/{private}/members/{bob.id}", alice.token).status_code == 204
    assert api.post(f"/api/rooms/{public}/leave", bob.token).status_code == 204
    after = [m["id"] for m in _feed(api, bob, limit=10)["messages"]]
    assert after == ids[::-1], "the private room is gone; @room counts only in rooms bob is in; names in public stay"


def test_the_mentions_feed_refuses_bad_queries(api, make_user):
    user = make_user()
    for query in ({"limit": 0}, {"limit": 101}, {"before": "x"}, {"room": "general"}):
        assert_error(api.get("/api/mentions", user.token, params=query), 400, "validation_error")
    assert_error(api.get("/api/mentions"), 401, "unauthorized")


def test_an_edit_moves_the_message_between_feeds(api, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    room = _room(api, alice, "feed-edits", members=[bob, carol])
    message = _send(api, alice, f"@{bob.username} look", room)["id"]
    assert [m["id"] for m in _feed(api, bob, limit=5)["messages"]] == [message]
    api.patch(f"/api/messages/{message}", alice.token, json={"messageBody": f"@{carol.username} look"})
    assert _feed(api, bob, limit=5)["messages"] == []
    assert [m["id"] for m in _feed(api, carol, limit=5)["messages"]] == [message]
    api.patch(f"/api/messages/{message}", alice.token, json={"messageBody": "@here look"})
    assert [m["id"] for m in _feed(api, bob, limit=5)["messages"]] == [message], "the owner's @here: everyone's"
    api.patch(f"/api/messages/{message}", alice.token, json={"messageBody": "never mind"})
    assert _feed(api, bob, limit=5)["messages"] == _feed(api, carol, limit=5)["messages"] == []


def _stored(db, room, author, body, **mentions):
    """A message as a version before mention keys stored it: the keys of its words only."""
    doc = {"_id": ObjectId(), "room": ObjectId(room), "user_id": ObjectId(author.id), "user_name": author.username,
           "message_body": body, "time_stamp": datetime.now(UTC), "deleted": False, "mentions": [],
           "mentions_room": False, "search_keys": keys_of(body), **mentions}  # fmt: skip
    store_messages(db, room, [doc])
    return doc


def test_mentions_stored_before_their_keys_are_in_the_feed_after_a_restart(api, db, make_user, server_factory):
    alice, bob = make_user(), make_user()
    room = _room(api, alice, "from-before", members=[bob])
    named = _stored(db, room, alice, f"@{bob.username} old news", mentions=[ObjectId(bob.id)])
    everyone = _stored(db, room, alice, "@room old news", mentions_room=True)
    _stored(db, room, alice, "old news")
    assert _feed(api, bob, limit=5)["messages"] == []  # what the migration is for
    restarted = type(api)(server_factory().url)  # clean_db dropped the migrations' record: this start-up runs it
    found = _feed(restarted, bob, limit=5)["messages"]
    assert [m["id"] for m in found] == [str(everyone["_id"]), str(named["_id"])]
    keys = db.messages.find_one({"_id": named["_id"]})["search_keys"]
    assert sorted(keys) == sorted([*keys_of(named["message_body"]), f"@{bob.id}"]), "its words' keys kept"
    assert db.migrations.find_one({"_id": mentions.MIGRATION})


def test_the_migration_leaves_a_message_edited_or_deleted_since_it_was_read(api, db, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    room = _room(api, alice, "raced", members=[bob, carol])
    edited = _stored(db, room, alice, f"@{bob.username} first", mentions=[ObjectId(bob.id)])
    deleted = _stored(db, room, alice, "@room first", mentions_room=True)
    kept = _stored(db, room, alice, "@room first", mentions_room=True)
    reads = [db.messages.find_one({"_id": doc["_id"]}) for doc in (edited, deleted, kept)]
    body = f"@{carol.username} second"
    api.patch(f"/api/messages/{edited['_id']}", alice.token, json={"messageBody": body})
    assert api.delete(f"/api/messages/{deleted['_id']}", alice.token).status_code == 204
    db.messages.bulk_write([mentions.add_mention_keys(read) for read in reads])
    assert db.messages.find_one({"_id": edited["_id"]})["search_keys"] == [*keys_of(body), f"@{carol.id}"]
    assert "search_keys" not in db.messages.find_one({"_id": deleted["_id"]}), "a deleted message has no keys"
    assert f"@room:{room}" in db.messages.find_one({"_id": kept["_id"]})["search_keys"]
