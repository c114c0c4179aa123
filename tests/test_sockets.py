"""The Socket.IO contract through the real server and python-socketio's client."""

import json
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import socketio
import websocket

from tests.support import TEST_SECRET, SocketClient
from tests.test_metrics import scrape


def _room(api, user, name, private=False):
    return api.post("/api/rooms", user.token, json={"name": name, "private": private}).json()["id"]


def _refused(url, **kwargs):
    """Connect and return the connect_error payload the server answered with."""
    errors = []
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data=None: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, transports=["websocket"], wait_timeout=5, **kwargs)
    return errors[0]


def test_connect_refuses_missing_bad_expired_refresh_and_revoked_tokens(server, api, make_user):
    user, revoked = make_user(), make_user()
    api.post("/api/auth/logout", revoked.token)
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    expired = jwt.encode({**claims, "exp": 1}, TEST_SECRET, algorithm="HS256")
    for auth in (None, {}, {"token": "garbage"}, {"token": expired}, {"token": user.refresh}, {"token": revoked.token}):
        error = _refused(server.url, auth=auth)
        assert error["data"]["error"]["code"] == "unauthorized", error
        assert error["message"]


def test_token_in_the_query_string_is_accepted(server, make_user):
    user = make_user()
    client = SocketClient(server.url + f"?token={user.token}", auth=False).connect()
    try:
        assert client.call("join", {})["ok"] is True
    finally:
        client.close()


def test_join_ack_lists_online_members_and_tells_the_room(connect, make_user):
    alice, bob = make_user(), make_user()
    a = connect(alice)
    ack = a.call("join", {})
    assert ack["ok"] is True and len(ack["room"]) == 24
    # `general` is shared with the other tests of this server: whoever else is online there stays listed.
    assert {"userId": alice.id, "userName": alice.username} in ack["members"]
    assert bob.id not in {m["userId"] for m in ack["members"]}
    b = connect(bob)
    ack = b.call("join", {"room": "general"})
    assert {alice.id, bob.id} <= {m["userId"] for m in ack["members"]}
    joined = a.wait_for("user_joined", lambda event: event["userId"] == bob.id)
    assert joined == {"room": ack["room"], "userId": bob.id, "userName": bob.username}
    presence = a.wait_for("presence", lambda event: event["userId"] == bob.id)
    assert presence == {"room": ack["room"], "userId": bob.id, "online": True}
    assert bob.id not in {event["userId"] for event in b.received("user_joined")}


def test_message_is_acked_once_stored_and_broadcast_to_the_room_only(api, connect, make_user, joined_pair):
    alice, bob, carol = make_user(), make_user(), make_user()
    side = _room(api, carol, "side")
    a, b = joined_pair((alice, bob)).sockets
    c = connect(carol)
    c.call("join", {"room": side})
    ack = a.call("message", {"messageBody": "hello all", "clientId": "a-1"})
    assert ack["ok"] is True
    stored = api.get("/api/messages", alice.token).json()["messages"]
    assert stored == [ack["message"]]
    assert b.wait_for("message") == ack["message"]
    assert a.wait_for("message") == ack["message"]
    c.call("message", {"room": side, "messageBody": "side talk"})
    c.wait_for("message")
    assert [m["messageBody"] for m in b.received("message")] == ["hello all"]
    assert [m["messageBody"] for m in c.received("message")] == ["side talk"]


def test_retry_after_a_lost_ack_returns_the_original_and_broadcasts_once(joined_pair, db):
    a, b = joined_pair().sockets
    first = a.call("message", {"messageBody": "once", "clientId": "retry-1"})
    again = a.call("message", {"messageBody": "once", "clientId": "retry-1"})
    assert again == first
    b.wait_for("message")
    b.settle()  # any second broadcast would have arrived by now
    assert len(b.received("message")) == 1
    assert db.messages.count_documents({"client_id": "retry-1"}) == 1


def test_concurrent_senders_and_retries_store_and_deliver_each_message_once(connect, make_user, db):
    senders = [connect(make_user()) for _ in range(6)]
    watcher = connect(make_user())
    for client in (*senders, watcher):
        client.call("join", {})

    def send(args):
        client, n = args
        # Each message twice at once, as a client retrying before its first ack came back.
        payload = {"messageBody": f"burst {n}", "clientId": f"burst-{n}"}
        with ThreadPoolExecutor(2) as pair:
            return list(pair.map(lambda _: client.call("message", payload), range(2)))

    work = [(client, f"{i}-{j}") for i, client in enumerate(senders) for j in range(15)]
    with ThreadPoolExecutor(len(senders)) as pool:
        acks = list(pool.map(send, work))
    assert all(first["ok"] and first == second for first, second in acks)
    ids = {first["message"]["id"] for first, _ in acks}
    assert len(ids) == len(work) == db.messages.count_documents({"client_id": {"$regex": "^burst-"}})
    watcher.wait_for_count("message", len(work), timeout=10)
    watcher.settle()  # any duplicate would have arrived by now
    assert sorted(m["id"] for m in watcher.received("message")) == sorted(ids)


def test_rest_send_edit_and_delete_reach_sockets(api, connect, make_user):
    alice, bob = make_user(), make_user()
    b = connect(bob)
    b.call("join", {})
    sent = api.post("/api/send", alice.token, json={"messageBody": "via rest"}).json()
    assert b.wait_for("message") == sent
    edited = api.patch(f"/api/messages/{sent['id']}", alice.token, json={"messageBody": "edited"}).json()
    assert b.wait_for("message_updated") == edited
    api.delete(f"/api/messages/{sent['id']}", alice.token)
    assert b.wait_for("message_deleted") == {"id": sent["id"], "room": sent["room"]}


def test_left_stops_delivery_and_user_left_waits_for_the_last_tab(api, connect, make_user):
    alice, bob = make_user(), make_user()
    watcher = connect(bob)
    watcher.call("join", {})
    tab1, tab2 = connect(alice), connect(alice)
    room = tab1.call("join", {})["room"]
    tab2.call("join", {})
    assert len([e for e in watcher.received("user_joined") if e["userId"] == alice.id]) <= 1
    assert tab1.call("left", {}) == {"ok": True, "room": room}
    api.post("/api/send", bob.token, json={"messageBody": "after left"})
    tab2.wait_for("message")
    assert not tab1.received("message")
    assert not [e for e in watcher.received("user_left") if e["userId"] == alice.id]
    tab2.close()
    left = watcher.wait_for("user_left", lambda e: e["userId"] == alice.id)
    assert left == {"room": room, "userId": alice.id, "userName": alice.username}
    assert watcher.wait_for("presence", lambda e: e["online"] is False and e["userId"] == alice.id)
    members = {m["user"]["id"]: m["online"] for m in api.get(f"/api/rooms/{room}/members", bob.token).json()["members"]}
    assert members[alice.id] is False and members[bob.id] is True


def test_typing_goes_to_the_others_only(connect, make_user):
    alice, bob = make_user(), make_user()
    a, b = connect(alice), connect(bob)
    assert a.call("typing", {"typing": True})["error"]["code"] == "forbidden"
    room = a.call("join", {})["room"]
    b.call("join", {})
    assert a.call("typing", {"typing": True}) == {"ok": True}
    assert b.wait_for("typing") == {"room": room, "userId": alice.id, "userName": alice.username, "typing": True}
    b.call("typing", {"typing": False})
    a.wait_for("typing")
    assert [e["userId"] for e in a.received("typing")] == [bob.id]


def test_sync_returns_what_was_missed_oldest_first(api, connect, make_user):
    alice, bob = make_user(), make_user()
    a = connect(alice)
    a.call("join", {})
    seen = a.call("message", {"messageBody": "before the gap"})["message"]
    a.close()
    missed = [api.post("/api/send", bob.token, json={"messageBody": f"missed {i}"}).json() for i in range(3)]
    again = connect(alice)
    again.call("join", {})
    ack = again.call("sync", {"after": seen["id"]})
    assert ack["ok"] is True and ack["messages"] == missed and ack["nextCursor"] is None
    page = again.call("sync", {"after": seen["id"], "limit": 2})
    assert page["messages"] == missed[:2] and page["nextCursor"] == missed[1]["id"]


def test_private_rooms_need_membership_and_removal_is_live(api, connect, make_user):
    owner, guest = make_user(), make_user()
    room = _room(api, owner, "private", private=True)
    o, g = connect(owner), connect(guest)
    o.call("join", {"room": room})
    assert g.call("join", {"room": room})["error"]["code"] == "not_found"
    api.put(f"/api/rooms/{room}/members/{guest.id}", owner.token, json={"role": "member"})
    assert g.call("join", {"room": room})["ok"] is True
    o.call("message", {"room": room, "messageBody": "first"})
    assert g.call("message", {"room": room, "messageBody": "second"})["ok"] is True
    g.wait_for("message", lambda m: m["messageBody"] == "second")
    api.delete(f"/api/rooms/{room}/members/{guest.id}", owner.token)
    o.wait_for("user_left", lambda e: e["userId"] == guest.id)
    o.call("message", {"room": room, "messageBody": "after removal"})
    o.wait_for("message", lambda m: m["messageBody"] == "after removal")
    assert [m["messageBody"] for m in g.received("message")] == ["first", "second"]
    assert g.call("message", {"room": room, "messageBody": "let me in"})["error"]["code"] == "not_found"


def test_readonly_can_no_longer_post(api, connect, make_user):
    owner, guest = make_user(), make_user()
    room = _room(api, owner, "announcements")
    g = connect(guest)
    g.call("join", {"room": room})
    assert g.call("message", {"room": room, "messageBody": "hi"})["ok"] is True
    api.put(f"/api/rooms/{room}/members/{guest.id}", owner.token, json={"role": "readonly"})
    ack = g.call("message", {"room": room, "messageBody": "still?"})
    assert ack == {"ok": False, "error": {"code": "forbidden", "message": ack["error"]["message"]}}


def test_a_joined_socket_reads_its_membership_and_room_at_the_join_not_per_message(api, connect, make_user, db):
    owner, member = make_user(), make_user()
    room = _room(api, owner, "chatty")
    api.post(f"/api/rooms/{room}/join", member.token)
    sockets = [connect(owner), connect(member)]
    for socket in sockets:
        socket.call("join", {"room": room})
    db.command("profile", 2)
    try:
        for socket in sockets:
            for n in range(3):
                assert socket.call("message", {"room": room, "messageBody": f"more {n}"})["ok"] is True
        # Reads only: the sender's read marker is written off the send path (services/read_state.py).
        reads = {
            name: db.system.profile.count_documents({"ns": f"{db.name}.{name}", "op": {"$ne": "update"}})
            for name in ("memberships", "rooms")
        }
        inserts = db.system.profile.count_documents({"ns": f"{db.name}.messages", "op": "insert"})
    finally:
        db.command("profile", 0)
        db.system.profile.drop()
    assert (reads, inserts) == ({"memberships": 0, "rooms": 0}, 6)


def test_room_deletion_evicts_its_sockets(api, connect, make_user):
    owner = make_user()
    room = _room(api, owner, "doomed")
    o = connect(owner)
    o.call("join", {"room": room})
    assert o.call("message", {"room": room, "messageBody": "last words"})["ok"] is True
    api.delete(f"/api/rooms/{room}", owner.token)
    assert o.wait_for("room_deleted") == {"room": room}
    assert o.call("message", {"room": room, "messageBody": "anyone?"})["error"]["code"] == "not_found"


def test_logout_disconnects_that_tokens_sockets(api, connect, make_user):
    user = make_user()
    client = connect(user)
    api.post("/api/auth/logout", user.token)
    assert client.wait_for_disconnect(5)


@pytest.mark.parametrize(
    "payload",
    [
        "a string",
        42,
        [1, 2],
        {"room": {"$gt": ""}, "messageBody": "x"},
        {"messageBody": {"$where": "1"}},
        {"messageBody": "x" * 100_000},
        {"messageBody": "x", "nested": {"a": {"b": [1, {"c": 2}]}}},
        {"room": "ffffffffffffffffffffffff", "messageBody": "x"},
        {"room": "x" * 65, "messageBody": "x"},
        {"room": "general", "messageBody": "x", "userId": "000000000000000000000000", "userName": "admin"},
    ],
)
def test_hostile_payloads_get_error_acks_and_the_connection_survives(connect, make_user, payload):
    client = connect(make_user())
    for event in ("message", "join", "typing", "sync", "left"):
        ack = client.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] in ("validation_error", "not_found"), (event, ack)
    assert client.sio.connected and client.call("join", {})["ok"] is True


def test_long_polling_transport(connect, make_user):
    alice = make_user()
    client = connect(alice, transports=["polling"])
    assert client.sio.transport() == "polling"
    client.call("join", {})
    ack = client.call("message", {"messageBody": "over polling"})
    assert client.wait_for("message") == ack["message"]


def test_sockets_connecting_at_once_share_their_revocation_reads(server, make_user):
    """Twenty sockets whose connect packets arrive together cost fewer than twenty revocation reads (a `distinct`
    each, before the reads were batched); every one is still let in with its own user."""
    users = [make_user() for _ in range(4)]
    url = server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    sockets = [websocket.create_connection(url, timeout=30) for _ in range(20)]
    try:
        for ws in sockets:
            assert ws.recv().startswith("0")  # engine.io open
        before = scrape(server.url)
        for i, ws in enumerate(sockets):
            ws.send("40" + json.dumps({"token": users[i % 4].token}))
        assert all(ws.recv().startswith('40{"sid"') for ws in sockets)
        reads = scrape(server.url).value("chat_db_command_seconds_count", command="distinct")
        assert 1 <= reads - before.value("chat_db_command_seconds_count", command="distinct") < 20
        ws = sockets[5]
        ws.send('420["join",{"room":"general"}]')
        ack = ws.recv()
        while not ack.startswith("430"):
            ack = ws.recv()
        assert users[1].id in ack  # the join's online list: the socket is its own user's
    finally:
        for ws in sockets:
            ws.close()


def _connected_raw(server, users, count):
    """`count` raw WebSockets, each connected with the token of `users[i % len(users)]`."""
    url = server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    sockets = [websocket.create_connection(url, timeout=30) for _ in range(count)]
    for i, ws in enumerate(sockets):
        assert ws.recv().startswith("0")  # engine.io open
        ws.send("40" + json.dumps({"token": users[i % len(users)].token}))
        assert ws.recv().startswith('40{"sid"')
    return sockets


def _join_all(sockets, room=None):
    """Send every socket's join at once (ack id 1); return each one's ack payload."""
    for ws in sockets:
        ws.send("421" + json.dumps(["join", {"room": room} if room else {}]))
    acks = []
    for ws in sockets:
        ack = ws.recv()
        while not ack.startswith("431"):
            ack = ws.recv()
        acks.append(json.loads(ack[3:])[0])
    return acks


def _commands(server, command):
    return scrape(server.url).value("chat_db_command_seconds_count", command=command)


def test_sockets_joining_at_once_share_their_reads(server, make_user):
    """Twenty sockets of ten users joining `general` at once: the room and the memberships are read in fewer `find`s
    than one a user (one a user and one for the room before this room's were read together, two a socket before
    any were); every one is still let in."""
    users = [make_user() for _ in range(10)]
    sockets = _connected_raw(server, users, 20)
    try:
        before = _commands(server, "find")
        acks = _join_all(sockets)
        reads = _commands(server, "find") - before
        assert all(ack["ok"] is True and users[i % 10].id in json.dumps(ack) for i, ack in enumerate(acks))
        assert 1 <= reads < 10, reads
    finally:
        for ws in sockets:
            ws.close()


def test_first_joins_at_once_are_admitted_together(server, api, make_user):
    """Sixteen sockets of eight users joining a room none of them belongs to, at once: the memberships are added
    in fewer writes than one a user (one a join before), and each join is still judged on its own user's sanctions: the
    banned user is refused, the one whose readonly role the room remembers comes back readonly, each once."""
    owner, users = make_user(), [make_user() for _ in range(8)]
    room = _room(api, owner, "first-joins")
    assert api.put(f"/api/rooms/{room}/bans/{users[0].id}", owner.token).ok
    muted = f"/api/rooms/{room}/members/{users[1].id}"
    assert api.put(muted, owner.token, json={"role": "readonly"}).ok
    assert api.delete(muted, owner.token).status_code == 204
    sockets = _connected_raw(server, users, 16)
    try:
        before = _commands(server, "insert")
        acks = _join_all(sockets, room)
        writes = _commands(server, "insert") - before
        assert [ack["ok"] for ack in acks] == [i % 8 != 0 for i in range(16)], acks
        assert {acks[i]["error"]["code"] for i in (0, 8)} == {"forbidden"}
        assert 1 <= writes < 7, writes  # before: a write a join that found no membership, one a user at least
    finally:
        for ws in sockets:
            ws.close()
    members = api.get(f"/api/rooms/{room}/members", owner.token).json()["members"]
    roles = [(m["user"]["id"], m["role"]) for m in members if m["user"]["id"] != owner.id]
    assert sorted(roles) == sorted([(users[1].id, "readonly")] + [(user.id, "member") for user in users[2:]])
