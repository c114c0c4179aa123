"""Rate limits from config: failed logins, registrations, and per-user actions (429 `rate_limited` with Retry-After)."""

import threading
import time

import pytest

from tests.support import Api, SocketClient, assert_error, register
from utils.transport.packets import EventBudgets


@pytest.fixture(scope="module")
def limited(server_factory):
    server = server_factory(RATE_LIMITS_ENABLED="true", LOGIN_RATE_LIMIT="3/minute", MESSAGE_RATE_LIMIT="3/minute")
    return Api(server.url)


def test_login_limit(limited, db):
    user = register(limited)
    for _ in range(3):
        limited.post("/api/auth/login", json={"username": user.username, "password": "wrong-password"})
    response = limited.post("/api/auth/login", json={"username": user.username, "password": user.password})
    error = assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1 and error["details"]["retryAfter"]


def test_message_limit_is_per_user(limited, db):
    alice, bob = register(limited), register(limited)
    for i in range(3):
        assert limited.post("/api/send", alice.token, json={"messageBody": f"m{i}"}).status_code == 201
    response = limited.post("/api/send", alice.token, json={"messageBody": "one too many"})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert limited.post("/api/send", bob.token, json={"messageBody": "bob is fine"}).status_code == 201


def test_register_limit(server_factory, db):
    api = Api(server_factory(RATE_LIMITS_ENABLED="true", REGISTER_RATE_LIMIT="2/hour").url)
    statuses = [
        api.post("/api/auth/register", json={"username": f"reg{i}", "password": "password-123"}).status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 429]


@pytest.fixture(scope="module")
def behind_proxy(server_factory):
    """Limits on, one trusted proxy: X-Forwarded-For picks the client address."""
    return Api(server_factory(RATE_LIMITS_ENABLED="true", LOGIN_RATE_LIMIT="2/minute", TRUSTED_PROXY_HOPS=1).url)


def _login_from(api, user, password, address):
    body = {"username": user.username, "password": password}
    return api.post("/api/auth/login", json=body, headers={"X-Forwarded-For": address}).status_code


def test_failed_logins_elsewhere_never_lock_the_owner_out(behind_proxy, db):
    owner = register(behind_proxy)
    assert [_login_from(behind_proxy, owner, "wrong-password", "6.6.6.6") for _ in range(3)] == [401, 401, 429]
    assert _login_from(behind_proxy, owner, owner.password, "6.6.6.6") == 429, "the guessing address waits"
    assert _login_from(behind_proxy, owner, owner.password, "7.7.7.7") == 200, "the owner, elsewhere, does not"


def test_successful_logins_are_not_counted(behind_proxy, db):
    owner = register(behind_proxy)
    assert [_login_from(behind_proxy, owner, owner.password, "8.8.8.8") for _ in range(4)] == [200] * 4


@pytest.fixture(scope="module")
def per_user_limits(server_factory):
    env = {"EDIT_RATE_LIMIT": "2/minute", "ROOM_CREATE_RATE_LIMIT": "2/minute", "READ_RATE_LIMIT": "3/minute"}
    return Api(server_factory(RATE_LIMITS_ENABLED="true", **env).url)


def _over_the_limit(api, response, other_user_call):
    error = assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1 and error["details"]["retryAfter"]
    assert other_user_call().status_code < 400, "another user has a budget of their own"


def test_edits_and_deletes_share_a_per_user_limit(per_user_limits, db):
    api, alice, bob = per_user_limits, register(per_user_limits), register(per_user_limits)
    ids = [api.post("/api/send", alice.token, json={"messageBody": f"m{i}"}).json()["id"] for i in range(3)]
    bobs = api.post("/api/send", bob.token, json={"messageBody": "bob's"}).json()["id"]
    assert api.patch(f"/api/messages/{ids[0]}", alice.token, json={"messageBody": "edited"}).status_code == 200
    assert api.delete(f"/api/messages/{ids[1]}", alice.token).status_code == 204
    response = api.patch(f"/api/messages/{ids[2]}", alice.token, json={"messageBody": "one too many"})
    _over_the_limit(api, response, lambda: api.delete(f"/api/messages/{bobs}", bob.token))
    assert_error(api.delete(f"/api/messages/{ids[2]}", alice.token), 429, "rate_limited")


def test_room_creation_limit_is_per_user(per_user_limits, db):
    api, alice, bob = per_user_limits, register(per_user_limits), register(per_user_limits)
    assert [api.post("/api/rooms", alice.token, json={"name": f"r{i}"}).status_code for i in range(2)] == [201, 201]
    response = api.post("/api/rooms", alice.token, json={"name": "r2"})
    _over_the_limit(api, response, lambda: api.post("/api/rooms", bob.token, json={"name": "bobs"}))


def test_history_reads_limit_is_per_user(per_user_limits, db):
    api, alice, bob = per_user_limits, register(per_user_limits), register(per_user_limits)
    assert [api.get("/api/messages", alice.token).status_code for _ in range(3)] == [200] * 3
    _over_the_limit(api, api.get("/api/messages", alice.token), lambda: api.get("/api/messages", bob.token))


def _acks(client, event, payloads):
    """Emit every payload at once, without waiting for an ack; return the acks in the order the events went."""
    acks, done = {}, threading.Event()

    def answer(index, ack):
        acks[index] = ack
        if len(acks) == len(payloads):
            done.set()

    for index, payload in enumerate(payloads):
        client.sio.emit(event, payload, callback=lambda ack, index=index: answer(index, ack))
    assert done.wait(10), f"{len(acks)} of {len(payloads)} acks"
    return [acks[index] for index in range(len(payloads))]


def test_a_flood_is_refused_before_it_is_read_and_the_socket_stays(server_factory, db):
    """A user's sockets share a budget of five events at once, then one a second: what comes over it is answered
    `rate_limited` and reaches nobody, while another user's events go on; a socket that goes on sending while
    refused gets an ack for every event and keeps its connection."""
    url = server_factory(
        RATE_LIMITS_ENABLED="true", SOCKET_EVENT_BURST="5", SOCKET_EVENT_RATE="1", TYPING_RATE_LIMIT="100/second"
    ).url
    api = Api(url)
    flooder, watcher = register(api), register(api)
    sockets = [SocketClient(url, user.token).connect() for user in (flooder, flooder, watcher)]
    try:
        for socket in sockets:
            assert socket.call("join", {"room": "general"})["ok"] is True  # the flooder's two: two of its five
        acks = _acks(sockets[0], "typing", [{"room": "general", "typing": True}] * 6)
        handled = [ack for ack in acks if ack["ok"]]
        refused = [ack["error"] for ack in acks if not ack["ok"]]
        assert len(handled) in (3, 4), acks  # the fourth if a second went by since the joins
        assert acks[: len(handled)] == handled, "the budget is spent in the order events arrive"
        assert {error["code"] for error in refused} == {"rate_limited"}
        assert all("events a second" in error["message"] and error["details"]["retryAfter"] for error in refused)
        assert sockets[1].call("typing", {"room": "general", "typing": True})["error"]["code"] == "rate_limited"
        assert sockets[2].call("typing", {"room": "general", "typing": True})["ok"] is True  # a budget of its own
        sockets[2].settle()
        assert len(sockets[2].received("typing")) == len(handled), "a refused event reached the room"
        time.sleep(1.1)  # one event a second comes back
        assert sockets[1].call("typing", {"room": "general", "typing": False})["ok"] is True
        flood = _acks(sockets[0], "typing", [{"room": "general", "typing": True}] * 12)
        assert {ack["error"]["code"] for ack in flood} == {"rate_limited"}
        assert not sockets[0].wait_for_disconnect(1), "a socket over its budget was disconnected"
        assert sockets[2].call("typing", {"room": "general", "typing": False})["ok"] is True
    finally:
        for socket in sockets:
            socket.close()


def test_a_user_limit_is_counted_before_the_room_is_looked_up(server_factory, db):
    """Over its limit, an event naming a room that does not exist is refused as over the limit: the lookup an
    answer of `not_found` or `forbidden` needs is not made for it."""
    url = server_factory(RATE_LIMITS_ENABLED="true", TYPING_RATE_LIMIT="1/minute", MESSAGE_RATE_LIMIT="1/minute").url
    socket = SocketClient(url, register(Api(url)).token).connect()
    try:
        assert socket.call("join", {"room": "general"})["ok"] is True
        assert socket.call("typing", {"room": "general", "typing": True})["ok"] is True
        assert socket.call("message", {"room": "general", "messageBody": "one"})["ok"] is True
        for event, payload in (("typing", {"typing": True}), ("message", {"messageBody": "two"})):
            ack = socket.call(event, {"room": "no-such-room", **payload})
            assert ack["ok"] is False and ack["error"]["code"] == "rate_limited", (event, ack)
    finally:
        socket.close()


def test_event_budgets_let_full_buckets_go_without_a_look_at_every_new_key(monkeypatch):
    """Thousands of users busy at once keep their buckets: the look for full ones to let go comes again only once
    the buckets have doubled (it came at every new user past the bound: a storm's cost grew with its square)."""
    budgets = EventBudgets(rate=1, burst=2)
    budgets.KEPT = budgets.kept = 4
    looks, let_full_go = [], budgets.let_full_go
    monkeypatch.setattr(budgets, "let_full_go", lambda now: looks.append(now) or let_full_go(now))
    for user in range(40):
        assert budgets.take(user) == 0
    assert len(budgets.buckets) == 40, "a bucket in use was let go"
    assert len(looks) <= 4, f"{len(looks)} looks for 40 users"
    assert budgets.take(0) == 0 and budgets.take(0) > 0  # two at once, the third refused
