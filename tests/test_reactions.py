"""Reactions over REST and the `react` event: one state, one broadcast per change, atomic under races."""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from bson import ObjectId

from tests.support import Api, assert_error, register
from tests.test_fanout import ordered

FAMILY = "👩\u200d👩\u200d👧"  # three emoji joined by zero-width joiners
SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # a black flag, tags, a cancel tag


def _path(message_id, emoji):
    return f"/api/messages/{message_id}/reactions/{quote(emoji, safe='')}"


def _put(api, user, message_id, emoji):
    return api.put(_path(message_id, emoji), user.token)


def _delete(api, user, message_id, emoji):
    return api.delete(_path(message_id, emoji), user.token)


def _send(api, user, room=None, body="react to me"):
    response = api.post("/api/send", user.token, json={"messageBody": body, **({"room": room} if room else {})})
    assert response.status_code == 201, response.text
    return response.json()


def _summary(message):
    return [(reaction["emoji"], reaction["count"], reaction["userIds"]) for reaction in message["reactions"]]


def _updates(socket):
    """The `message_updated` events this socket has received, once everything sent before is in."""
    socket.settle()
    return socket.received("message_updated")


def test_rest_and_socket_reactions_make_one_state_and_one_broadcast_per_change(api, joined_pair):
    pair = joined_pair()
    (alice, bob), (alice_socket, bob_socket) = pair.users, pair.sockets
    message = _send(api, alice)

    added = _put(api, alice, message["id"], "👍")
    assert added.status_code == 200, added.text
    assert _summary(added.json()) == [("👍", 1, [alice.id])]
    ack = bob_socket.call("react", {"messageId": message["id"], "emoji": "👍", "add": True})
    assert ack["ok"] is True and _summary(ack["message"]) == [("👍", 2, [alice.id, bob.id])]
    assert set(ack["message"]) == set(added.json()) and ack["message"]["id"] == message["id"]
    for socket in pair.sockets:
        assert [_summary(update) for update in _updates(socket)] == [
            [("👍", 1, [alice.id])],
            [("👍", 2, [alice.id, bob.id])],
        ]

    again = _put(api, alice, message["id"], "👍")
    assert again.status_code == 200 and _summary(again.json()) == [("👍", 2, [alice.id, bob.id])]
    ack = alice_socket.call("react", {"messageId": message["id"], "emoji": "👍", "add": True})
    assert ack["ok"] is True and _summary(ack["message"]) == [("👍", 2, [alice.id, bob.id])]
    assert len(_updates(alice_socket)) == len(_updates(bob_socket)) == 2, "a repeated add broadcasts nothing"

    ack = bob_socket.call("react", {"messageId": message["id"], "emoji": "👍", "add": False})
    assert ack["ok"] is True and _summary(ack["message"]) == [("👍", 1, [alice.id])]
    removed = _delete(api, alice, message["id"], "👍")
    assert removed.status_code == 200 and removed.json()["reactions"] == [], "the last reaction takes its emoji along"
    twice = _delete(api, alice, message["id"], "👍")
    assert twice.status_code == 200 and twice.json()["reactions"] == []
    ack = bob_socket.call("react", {"messageId": message["id"], "emoji": "👍", "add": False})
    assert ack["ok"] is True and ack["message"]["reactions"] == []
    for socket in pair.sockets:
        assert [_summary(update) for update in _updates(socket)[2:]] == [[("👍", 1, [alice.id])], []]
    history = api.get("/api/messages", alice.token).json()["messages"]
    assert history[0]["id"] == message["id"] and history[0]["reactions"] == []


def test_emoji_keep_the_order_they_were_first_used_in(api, make_user):
    alice, bob = make_user(), make_user()
    message = _send(api, alice)
    for user, emoji in ((alice, "👍"), (bob, "🎉"), (alice, "🎉"), (bob, "👍")):
        assert _put(api, user, message["id"], emoji).status_code == 200
    state = _delete(api, alice, message["id"], "👍").json()
    assert _summary(state) == [("👍", 1, [bob.id]), ("🎉", 2, [bob.id, alice.id])]
    _delete(api, bob, message["id"], "👍")
    state = _put(api, alice, message["id"], "👍").json()
    assert _summary(state) == [("🎉", 2, [bob.id, alice.id]), ("👍", 1, [alice.id])], "a new first use goes last"


@pytest.mark.parametrize("emoji", ["👍", ":+1:", "🇫🇷", FAMILY, "🏳️\u200d🌈", "🧑🏽\u200d🚀", SCOTLAND, "1️⃣", "x" * 64])
def test_url_encoded_emoji_are_stored_as_sent(api, make_user, emoji):
    user = make_user()
    message = _send(api, user)
    response = _put(api, user, message["id"], emoji)
    assert response.status_code == 200, response.text
    assert _summary(response.json()) == [(emoji, 1, [user.id])]
    assert _delete(api, user, message["id"], emoji).json()["reactions"] == []


@pytest.mark.parametrize(
    "emoji",
    [
        " ",
        "a b",
        "👍\t",
        "\u3000",  # an ideographic space
        "x" * 65,
        "a\u200db",  # a joiner between letters hides, it joins no emoji
        "\u200d👍",
        "👍\u200d",
        "👍\u200d\u200d👍",
        "\u200b",  # zero-width space
        "👍\u202e",  # right-to-left override
        "\U000e0067\U000e007f",  # tags without their flag
        "\x07",
    ],
)
def test_bad_emoji_are_validation_errors_over_rest_and_socket(api, connect, make_user, emoji):
    user = make_user()
    message = _send(api, user)
    error = assert_error(_put(api, user, message["id"], emoji), 400, "validation_error")
    assert "emoji" in error["details"]
    ack = connect(user).call("react", {"messageId": message["id"], "emoji": emoji, "add": True})
    assert ack["ok"] is False and ack["error"]["code"] == "validation_error" and "emoji" in ack["error"]["details"]
    assert api.get("/api/messages", user.token).json()["messages"][0]["reactions"] == []


def test_emoji_the_path_cannot_carry(api, connect, make_user):
    user = make_user()
    message = _send(api, user)
    socket = connect(user)
    for emoji in ("", "a/b", "\ud800"):  # empty, a slash, a lone surrogate
        ack = socket.call("react", {"messageId": message["id"], "emoji": emoji, "add": True})
        assert ack["ok"] is False and ack["error"]["code"] == "validation_error", (emoji, ack)
    assert_error(api.put(f"/api/messages/{message['id']}/reactions/", user.token), 404, "not_found")
    assert_error(api.put(f"/api/messages/{message['id']}/reactions/%FF", user.token), 400, "validation_error")


@pytest.mark.parametrize(
    "payload",
    [
        {"emoji": "👍", "add": True},
        {"messageId": "nope", "emoji": "👍", "add": True},
        {"messageId": "MESSAGE", "emoji": "👍"},
        {"messageId": "MESSAGE", "emoji": "👍", "add": "yes"},
        {"messageId": "MESSAGE", "emoji": 1, "add": True},
        {"messageId": "MESSAGE", "emoji": "👍", "add": True, "room": "general"},
        {"messageId": {"$ne": None}, "emoji": "👍", "add": True},
    ],
)
def test_react_payload_validation(api, connect, make_user, payload):
    user = make_user()
    message = _send(api, user)
    payload = {key: message["id"] if value == "MESSAGE" else value for key, value in payload.items()}
    ack = connect(user).call("react", payload)
    assert ack["ok"] is False and ack["error"]["code"] == "validation_error", ack


def test_who_may_react(api, connect, make_user, db):
    owner, reader, outsider, admin = make_user(), make_user(), make_user(), make_user(admin=True)
    public = api.post("/api/rooms", owner.token, json={"name": "open-room"}).json()
    assert api.put(f"/api/rooms/{public['id']}/members/{reader.id}", owner.token, json={"role": "readonly"}).ok
    message = _send(api, owner, public["id"])
    error = assert_error(_put(api, reader, message["id"], "👍"), 403, "forbidden")
    assert "readonly" in error["message"]
    ack = connect(reader).call("react", {"messageId": message["id"], "emoji": "👍", "add": True})
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    assert_error(_put(api, outsider, message["id"], "👍"), 403, "forbidden")  # a public room: join first
    assert _put(api, admin, message["id"], "👍").status_code == 200

    secret = api.post("/api/rooms", owner.token, json={"name": "closed-room", "private": True}).json()
    hidden = _send(api, owner, secret["id"])
    assert_error(_put(api, outsider, hidden["id"], "👍"), 404, "not_found")
    assert_error(_delete(api, outsider, hidden["id"], "👍"), 404, "not_found")
    ack = connect(outsider).call("react", {"messageId": hidden["id"], "emoji": "👍", "add": True})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    state = db.messages.find_one({"_id": ObjectId(hidden["id"])})
    assert state["reactions"] == [], "nothing was written"


def test_in_a_dm_only_its_participants_react(api, make_user):
    alice, bob, admin = make_user(), make_user(), make_user(admin=True)
    dm = api.post("/api/dms", alice.token, json={"userIds": [bob.id]}).json()["id"]
    message = _send(api, alice, dm)
    assert _summary(_put(api, bob, message["id"], "👍").json()) == [("👍", 1, [bob.id])]
    assert_error(_put(api, admin, message["id"], "👍"), 403, "forbidden")  # an admin reads a DM, takes no part


def test_deleted_unknown_and_archived_messages_are_not_found(api, make_user, db):
    user = make_user()
    message = _send(api, user)
    assert _put(api, user, message["id"], "👍").status_code == 200
    assert api.delete(f"/api/messages/{message['id']}", user.token).status_code == 204
    assert_error(_put(api, user, message["id"], "👍"), 404, "not_found")
    assert_error(_delete(api, user, message["id"], "👍"), 404, "not_found")
    assert_error(_put(api, user, "f" * 24, "👍"), 404, "not_found")
    assert_error(_put(api, user, "not-an-id", "👍"), 404, "not_found")
    old = _send(api, user)
    db.rooms.update_one({"_id": ObjectId(old["room"])}, {"$set": {"archived_seq": 10**6}})  # as the archiver marks it
    assert_error(_put(api, user, old["id"], "👍"), 404, "not_found")


def test_at_most_20_different_emoji(api, make_user):
    alice, bob = make_user(), make_user()
    message = _send(api, alice)
    emoji = [f":e{i}:" for i in range(21)]
    for name in emoji[:20]:
        assert _put(api, alice, message["id"], name).status_code == 200
    error = assert_error(_put(api, bob, message["id"], emoji[20]), 400, "validation_error")
    assert "emoji" in error["details"]
    more = _put(api, bob, message["id"], emoji[0])
    assert more.status_code == 200 and _summary(more.json())[0] == (emoji[0], 2, [alice.id, bob.id])
    _delete(api, alice, message["id"], emoji[5])
    state = _put(api, bob, message["id"], emoji[20]).json()
    assert [reaction["emoji"] for reaction in state["reactions"]] == emoji[:5] + emoji[6:]


def test_users_reacting_at_once_all_count(api, make_user):
    author = make_user()
    users = [make_user() for _ in range(12)]
    message = _send(api, author)
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda user: _put(Api(api.url), user, message["id"], "👍"), users))
    assert [answer.status_code for answer in answers] == [200] * len(users)
    [reaction] = api.get("/api/messages", author.token).json()["messages"][0]["reactions"]
    assert reaction["count"] == len(users) and sorted(reaction["userIds"]) == sorted(user.id for user in users)
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda user: _delete(Api(api.url), user, message["id"], "👍"), users))
    assert [answer.status_code for answer in answers] == [200] * len(users)
    assert api.get("/api/messages", author.token).json()["messages"][0]["reactions"] == []


def test_new_emoji_racing_for_the_last_places_never_make_a_21st(api, make_user):
    author = make_user()
    users = [make_user() for _ in range(25)]
    message = _send(api, author)
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda i: _put(Api(api.url), users[i], message["id"], f":e{i}:"), range(len(users))))
    assert sorted(answer.status_code for answer in answers) == [200] * 20 + [400] * 5
    reactions = api.get("/api/messages", author.token).json()["messages"][0]["reactions"]
    assert len(reactions) == 20 and all(reaction["count"] == 1 for reaction in reactions)


def test_reactions_count_against_their_own_limit_over_rest_and_socket(server_factory, connect):
    limited = server_factory(RATE_LIMITS_ENABLED="true", REACTION_RATE_LIMIT="3/minute")
    api = Api(limited.url)
    user = register(api)
    message = _send(api, user)
    socket = connect(user, url=limited.url)
    assert _put(api, user, message["id"], "👍").status_code == 200
    assert socket.call("react", {"messageId": message["id"], "emoji": "👍", "add": False})["ok"] is True
    assert _put(api, user, message["id"], "🎉").status_code == 200
    assert_error(_put(api, user, message["id"], "👀"), 429, "rate_limited")
    ack = socket.call("react", {"messageId": message["id"], "emoji": "👀", "add": True})
    assert ack["ok"] is False and ack["error"]["code"] == "rate_limited"
    assert api.post("/api/send", user.token, json={"messageBody": "still fine"}).status_code == 201


def test_a_message_s_broadcast_states_never_go_back_when_users_react_at_once(api, make_user, connect):
    """Thirty users react at once: each change broadcasts the message, and a client keeps the last state it got, so
    the states must come in the order the database took the changes. Broadcast as each handler ran, the counts went
    back (24, then 23) in eight runs of eight."""
    author = make_user()
    users = [make_user() for _ in range(30)]
    observer = ordered(connect(author))
    assert observer.call("join", {})["ok"] is True
    message = _send(api, author)
    sessions = {user.id: Api(api.url) for user in users}  # made beforehand: the requests leave together
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda user: _put(sessions[user.id], user, message["id"], "👍"), users))
    for session in sessions.values():
        session.http.close()
    assert [answer.status_code for answer in answers] == [200] * len(users)
    observer.wait_for_count("message_updated", len(users), lambda m: m["id"] == message["id"], timeout=20)
    counts = [m["reactions"][0]["count"] for m in observer.received("message_updated") if m["id"] == message["id"]]
    assert counts == sorted(counts) and counts[-1] == len(users), counts
