"""Direct messages: one room per set of people (also under a race), fixed participants, the `kind`
filter, and `room_added` to the people added, on one process and across two."""

import threading
import uuid
from urllib.parse import quote

import mongoengine
import pytest
from bson import ObjectId

from model.user import User
from services import rooms
from tests.support import Api, assert_error, plan_stages


def _open(api, user, *others, status=None):
    response = api.post("/api/dms", user.token, json={"userIds": [other.id for other in others]})
    if status is not None:
        assert response.status_code == status, response.text
    return response


def _members(api, user, room):
    return {m["user"]["id"]: m["role"] for m in api.get(f"/api/rooms/{room}/members", user.token).json()["members"]}


def test_opening_creates_a_dm_then_finds_it_whatever_the_order(api, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    dm = _open(api, alice, bob, carol, status=201).json()
    assert dm["kind"] == "dm" and dm["private"] is True and dm["name"] is None and dm["description"] == ""
    assert dm["createdBy"] == alice.id and dm["myRole"] == "member" and dm["memberCount"] == 3
    again = _open(api, bob, carol, alice, alice, bob, status=200).json()
    assert again["id"] == dm["id"] and again["createdBy"] == alice.id and again["myRole"] == "member"
    assert _open(api, alice, carol, bob, carol, alice, status=200).json()["id"] == dm["id"]
    assert _members(api, carol, dm["id"]) == {alice.id: "member", bob.id: "member", carol.id: "member"}
    assert api.get(f"/api/rooms/{dm['id']}", bob.token).json() == again


def test_each_set_of_people_has_its_own_dm(api, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    pair = _open(api, alice, bob, status=201).json()["id"]
    trio = _open(api, alice, bob, carol, status=201).json()["id"]
    other_pair = _open(api, bob, carol, status=201).json()["id"]
    assert len({pair, trio, other_pair}) == 3
    assert _open(api, bob, alice, status=200).json()["id"] == pair


def test_concurrent_opens_of_one_set_make_one_room_and_one_set_of_memberships(server, db, make_user):
    people = [make_user() for _ in range(4)]
    answers, start = [], threading.Barrier(10)

    def open_dm(i):
        caller = people[i % len(people)]
        api = Api(server.url)  # a session each: requests' sessions are not shared between threads
        start.wait()
        answers.append(_open(api, caller, *people))

    threads = [threading.Thread(target=open_dm, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    # No answer, the losers' included, came before every membership existed.
    assert {a.json()["memberCount"] for a in answers} == {4}
    room = ObjectId(answers[0].json()["id"])
    assert db.rooms.count_documents({"kind": "dm"}) == 1
    memberships = list(db.memberships.find({"room": room}))
    assert sorted(str(m["user"]) for m in memberships) == sorted(p.id for p in people)
    assert {m["role"] for m in memberships} == {"member"}


def test_an_unknown_user_is_not_found_and_nothing_is_created(api, db, make_user):
    alice, bob = make_user(), make_user()
    stranger = str(ObjectId())
    error = assert_error(api.post("/api/dms", alice.token, json={"userIds": [bob.id, stranger]}), 404, "not_found")
    assert stranger in error["message"]
    assert db.rooms.count_documents({"kind": "dm"}) == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"userIds": []}, {"userIds": "x"}, {"userIds": ["nope"]}, {"userIds": [42]}, {"userIds": [{"$gt": ""}]},
     {"userIds": [str(ObjectId()) for _ in range(10)]}, {"userIds": [str(ObjectId())] * 101},
     {"userIds": None}, {"userIds": [str(ObjectId())], "name": "pals"}],
)  # fmt: skip
def test_bad_requests_are_validation_errors(api, db, make_user, body):
    assert_error(api.post("/api/dms", make_user().token, json=body), 400, "validation_error")
    assert db.rooms.count_documents({"kind": "dm"}) == 0


def test_only_the_caller_or_duplicates_of_nobody_else_is_a_validation_error(api, make_user):
    alice = make_user()
    error = assert_error(
        api.post("/api/dms", alice.token, json={"userIds": [alice.id, alice.id]}), 400, "validation_error"
    )
    assert "userIds" in error["details"]


def test_nine_others_are_allowed_and_duplicates_do_not_count(api, make_user):
    alice, others = make_user(), [make_user() for _ in range(9)]
    ids = [o.id for o in others] + [others[0].id, alice.id]
    response = api.post("/api/dms", alice.token, json={"userIds": ids})
    assert response.status_code == 201 and response.json()["memberCount"] == 10


@pytest.fixture
def trio(api, make_user):
    """A DM of alice and bob, an admin who is not in it, and carol, who is in nothing."""
    alice, bob, admin, carol = make_user(), make_user(), make_user(admin=True), make_user()
    room = _open(api, alice, bob, status=201).json()["id"]
    return room, alice, bob, admin, carol


def _changes(api, room, target, outsider):
    """Every request that would change a DM, aimed at `target` (a participant) or `outsider`."""
    path = f"/api/rooms/{room}"
    return {
        "add member": ("PUT", f"{path}/members/{outsider.id}", {"role": "member"}),
        "role change": ("PUT", f"{path}/members/{target.id}", {"role": "moderator"}),
        "make readonly": ("PUT", f"{path}/members/{target.id}", {"role": "readonly"}),
        "remove": ("DELETE", f"{path}/members/{target.id}", None),
        "ban": ("PUT", f"{path}/bans/{target.id}", None),
        "ban outsider": ("PUT", f"{path}/bans/{outsider.id}", None),
        "unban": ("DELETE", f"{path}/bans/{outsider.id}", None),
        "rename": ("PATCH", path, {"name": "renamed"}),
        "describe": ("PATCH", path, {"description": "ours"}),
        "delete": ("DELETE", path, None),
        "leave": ("POST", f"{path}/leave", None),
    }


@pytest.mark.parametrize("actor", ["participant", "admin"])
def test_nobody_changes_a_dm_not_even_an_admin(api, db, trio, actor):
    room, alice, bob, admin, carol = trio
    caller = alice if actor == "participant" else admin
    before = _members(api, alice, room), db.rooms.find_one({"_id": ObjectId(room)})
    for name, (method, path, body) in _changes(api, room, bob, carol).items():
        response = api.request(method, path, caller.token, **({"json": body} if body else {}))
        assert response.status_code == 403, (name, response.text)
        assert_error(response, 403, "forbidden")
    assert_error(api.delete(f"/api/rooms/{room}/members/{caller.id}", caller.token), 403, "forbidden")
    assert (_members(api, alice, room), db.rooms.find_one({"_id": ObjectId(room)})) == before
    assert db.room_sanctions.count_documents({}) == 0


def test_an_admin_participant_cannot_change_a_dm_either(api, make_user):
    admin, bob = make_user(admin=True), make_user()
    room = _open(api, admin, bob, status=201).json()["id"]
    assert_error(api.delete(f"/api/rooms/{room}/members/{bob.id}", admin.token), 403, "forbidden")
    assert_error(api.patch(f"/api/rooms/{room}", admin.token, json={"name": "mine"}), 403, "forbidden")
    assert _members(api, bob, room) == {admin.id: "member", bob.id: "member"}


def test_participants_talk_outsiders_do_not_see_it(api, connect, trio):
    room, alice, bob, _, carol = trio
    bob_socket = connect(bob)
    assert bob_socket.call("join", {"room": room})["ok"] is True
    sent = api.post("/api/send", alice.token, json={"room": room, "messageBody": "just us"}).json()
    assert bob_socket.wait_for("message") == sent
    assert api.get(f"/api/messages?room={room}", bob.token).json()["messages"] == [sent]
    assert_error(api.get(f"/api/rooms/{room}", carol.token), 404, "not_found")
    assert_error(api.get(f"/api/messages?room={room}", carol.token), 404, "not_found")
    assert_error(api.get(f"/api/rooms/{room}/members", carol.token), 404, "not_found")
    assert_error(api.post("/api/send", carol.token, json={"room": room, "messageBody": "hi"}), 404, "not_found")
    assert_error(api.post(f"/api/rooms/{room}/join", carol.token), 404, "not_found")
    carol_socket = connect(carol)
    for event, payload in (("join", {"room": room}), ("message", {"room": room, "messageBody": "hi"})):
        ack = carol_socket.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
    carol_socket.settle()
    assert not carol_socket.received("message")


def test_an_admin_reads_a_dm_but_does_not_enter_it(api, connect, trio):
    room, alice, _, admin, _ = trio
    sent = api.post("/api/send", alice.token, json={"room": room, "messageBody": "private"}).json()
    assert api.get(f"/api/messages?room={room}", admin.token).json()["messages"] == [sent]
    assert api.get(f"/api/rooms/{room}", admin.token).json()["myRole"] is None
    assert_error(api.post("/api/send", admin.token, json={"room": room, "messageBody": "hi"}), 403, "forbidden")
    assert_error(api.post(f"/api/rooms/{room}/join", admin.token), 403, "forbidden")
    socket = connect(admin)
    for event, payload in (("join", {"room": room}), ("message", {"room": room, "messageBody": "hi"})):
        ack = socket.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack
    assert len(_members(api, alice, room)) == 2


def test_a_dm_is_named_by_its_id_only(api, connect, trio):
    room, alice, bob, _, _ = trio
    key = "\x1f" + ",".join(sorted((alice.id, bob.id)))  # the DM's key, short enough for a room reference
    assert_error(api.get(f"/api/rooms/{quote(key)}", alice.token), 404, "not_found")
    assert_error(api.get(f"/api/messages?room={quote(key)}", alice.token), 404, "not_found")
    ack = connect(alice).call("join", {"room": key})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack
    assert api.get(f"/api/rooms/{room}", alice.token).json()["kind"] == "dm"


def test_room_names_cannot_spell_a_dm_key(api, make_user):
    alice, bob = make_user(), make_user()
    key = "\x1f" + ",".join(sorted((alice.id, bob.id)))
    assert api.post("/api/rooms", alice.token, json={"name": key}).json()["name"] == key[1:], "trimmed off"
    assert_error(api.post("/api/rooms", alice.token, json={"name": "pa\x1fls"}), 400, "validation_error")
    assert _open(api, alice, bob).status_code == 201


def _names(api, user, query=""):
    rooms_ = api.get("/api/rooms" + query, user.token).json()["rooms"]
    return [room["name"] or f"dm:{room['id']}" for room in rooms_]


def test_the_room_list_filters_by_kind(api, make_user):
    alice, bob, carol, dave, admin = make_user(), make_user(), make_user(), make_user(), make_user(admin=True)
    api.post("/api/rooms", alice.token, json={"name": "lounge"})
    ours = "dm:" + _open(api, alice, bob, status=201).json()["id"]
    theirs = "dm:" + _open(api, carol, dave, status=201).json()["id"]
    api.post("/api/rooms", carol.token, json={"name": "hideout", "private": True})
    admins = "dm:" + _open(api, admin, alice, status=201).json()["id"]
    assert _names(api, alice) == [admins, ours, "lounge", "general"]
    assert _names(api, alice, "?kind=dm") == [admins, ours]
    assert _names(api, alice, "?kind=room") == ["lounge", "general"]
    assert _names(api, bob, "?kind=dm") == [ours]
    assert _names(api, admin) == [admins, "hideout", "lounge", "general"], "admins list only their own DMs"
    assert _names(api, admin, "?kind=dm") == [admins]
    assert _names(api, admin, "?kind=room") == ["hideout", "lounge", "general"]
    assert theirs in _names(api, carol, "?kind=dm")
    for bad in ("?kind=DM", "?kind=", "?kind=all", "?kind=%24ne"):
        assert_error(api.get("/api/rooms" + bad, alice.token), 400, "validation_error")


def test_the_dm_list_pages_newest_first(api, make_user):
    alice, others = make_user(), [make_user() for _ in range(3)]
    opened = [_open(api, alice, other, status=201).json()["id"] for other in others]
    first = api.get("/api/rooms?kind=dm&limit=2", alice.token).json()
    assert [r["id"] for r in first["rooms"]] == opened[:0:-1] and first["nextCursor"]
    second = api.get(f"/api/rooms?kind=dm&limit=2&cursor={first['nextCursor']}", alice.token).json()
    assert [r["id"] for r in second["rooms"]] == opened[:1] and second["nextCursor"] is None


def test_the_dm_list_is_read_from_the_kind_index(mongo_uri, api, make_user):
    alice, bob = make_user(), make_user()
    _open(api, alice, bob, status=201)
    for i in range(5):
        api.post("/api/rooms", alice.token, json={"name": f"room-{i}"})
    mongoengine.connect(host=mongo_uri, tz_aware=True, uuidRepresentation="standard")
    try:
        plan = rooms.listed(User(id=ObjectId(alice.id), role="user"), "dm").limit(51).explain()
    finally:
        mongoengine.disconnect()
    scans = [s for s in plan_stages(plan) if s["stage"] in ("IXSCAN", "COLLSCAN")]
    assert [s["stage"] for s in scans] == ["IXSCAN"] and list(scans[0]["keyPattern"]) == ["kind", "_id"], plan
    examined = plan.get("executionStats", {}).get("totalDocsExamined")
    assert examined is None or examined <= 1, plan


def test_a_new_dm_is_announced_to_the_others_on_every_socket_not_to_its_creator(api, connect, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    creator, bob_tabs, carol_socket = connect(alice), (connect(bob), connect(bob)), connect(carol)
    dm = _open(api, alice, bob, carol, status=201).json()
    for socket in (*bob_tabs, carol_socket):
        added = socket.wait_for("room_added")
        assert added == {"room": {**dm, "myRole": "member"}}
        assert added["room"]["kind"] == "dm" and added["room"]["memberCount"] == 3
    _open(api, bob, alice, carol, status=200)
    for socket in (creator, *bob_tabs, carol_socket):
        socket.settle()
    assert not creator.received("room_added")
    assert [len(s.received("room_added")) for s in (*bob_tabs, carol_socket)] == [1, 1, 1], (
        "an existing DM is news to nobody"
    )


def test_someone_added_to_a_room_hears_of_it_with_their_own_view(api, connect, make_user):
    owner, bob, admin = make_user(), make_user(), make_user(admin=True)
    room = api.post("/api/rooms", owner.token, json={"name": "crew", "private": True}).json()["id"]
    owner_socket, bob_socket, admin_socket = connect(owner), connect(bob), connect(admin)
    assert api.put(f"/api/rooms/{room}/members/{bob.id}", owner.token, json={"role": "moderator"}).ok
    added = bob_socket.wait_for("room_added")["room"]
    assert added["id"] == room and added["name"] == "crew" and added["kind"] == "room"
    assert added["myRole"] == "moderator" and added["memberCount"] == 2 and added["private"] is True
    assert api.put(f"/api/rooms/{room}/members/{bob.id}", owner.token, json={"role": "member"}).ok
    assert api.put(f"/api/rooms/{room}/members/{admin.id}", admin.token, json={"role": "member"}).ok
    for socket in (owner_socket, bob_socket, admin_socket):
        socket.settle()
    assert len(bob_socket.received("room_added")) == 1, "a role change is not an addition"
    assert not owner_socket.received("room_added")
    assert not admin_socket.received("room_added"), "adding oneself is not news"


@pytest.fixture
def nodes(server_factory, redis_url):
    """Two server processes on one database and one Redis, on a channel of their own."""
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"chat-{uuid.uuid4().hex[:8]}"}
    return server_factory(**env), server_factory(**env)


def test_room_added_crosses_processes(nodes, connect, make_user):
    a_node, b_node = nodes
    alice, bob, carol = make_user(), make_user(), make_user()
    bob_socket = connect(bob, url=b_node.url)
    api_a = Api(a_node.url)
    dm = _open(api_a, alice, bob, status=201).json()
    assert bob_socket.wait_for("room_added") == {"room": dm}
    room = api_a.post("/api/rooms", carol.token, json={"name": "far-away", "private": True}).json()["id"]
    assert api_a.put(f"/api/rooms/{room}/members/{bob.id}", carol.token, json={"role": "member"}).ok
    added = bob_socket.wait_for("room_added", lambda event: event["room"]["id"] == room)["room"]
    assert added["myRole"] == "member" and added["kind"] == "room"
