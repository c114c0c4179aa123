"""Clients of the original single-room service: their payloads work once they send a token, and
a socket that joined their way gets their events for `general` (userJoined, userLeft, onlineUsers)."""

import json
import os
import subprocess
import uuid

import pytest

from tests.support import ROOT, Api, SocketClient, assert_error, register

LEGACY_EVENTS = ("userJoined", "userLeft", "onlineUsers")


def _names(online):
    return sorted(user["userName"] for user in online)


def test_rest_send_accepts_and_ignores_the_original_fields(api, make_user):
    user = make_user()
    body = {"userName": "someone-else", "userId": "forged", "messageBody": "as in 2019", "timeStamp": 12345}
    sent = api.post("/api/send", user.token, json=body)
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert (message["userId"], message["userName"], message["messageBody"]) == (user.id, user.username, "as in 2019")
    assert message["timeStamp"].startswith("20") and message["timeStamp"] != 12345
    with_room = {"room": "general", "userName": "x", "messageBody": "a room makes it a modern request"}
    error = assert_error(api.post("/api/send", user.token, json=with_room), 400, "validation_error")
    assert error["details"] == {"userName": ["Unknown field."]}
    nested = {"userName": {"$gt": ""}, "messageBody": "x"}
    assert_error(api.post("/api/send", user.token, json=nested), 400, "validation_error")


def test_a_legacy_socket_gets_the_original_events_and_a_modern_one_none(connect, make_user):
    old, other, modern_user = make_user(), make_user(), make_user()
    legacy = connect(old)
    assert legacy.call("join", {"userId": "x", "userName": "whatever"})["ok"] is True
    assert legacy.wait_for("userJoined") == {"userId": old.id, "userName": old.username}
    assert _names(legacy.wait_for("onlineUsers")) == [old.username]
    modern = connect(modern_user)
    modern.call("join", {})
    second = connect(other)
    second.call("join", {"userName": other.username})
    legacy.wait_for("onlineUsers", lambda users: len(users) == 3)
    ack = legacy.call("message", {"userId": "x", "userName": "y", "messageBody": "old style", "timeStamp": "now"})
    assert ack["ok"] is True and ack["message"]["userName"] == old.username
    assert second.call("left", {"userName": other.username})["ok"] is True
    assert legacy.wait_for("userLeft", lambda e: e["userId"] == other.id)["userName"] == other.username
    legacy.wait_for("onlineUsers", lambda users: _names(users) == sorted([old.username, modern_user.username]))
    marker = modern.call("message", {"messageBody": "anything emitted before this has arrived"})["message"]
    modern.wait_for("message", lambda message: message["id"] == marker["id"])
    assert not [name for name, _ in modern.events if name in LEGACY_EVENTS]


@pytest.fixture
def nodes(server_factory, redis_url):
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"legacy-{uuid.uuid4().hex[:8]}"}
    return server_factory(**env), server_factory(**env)


def test_online_users_lists_each_user_once_across_processes(nodes, make_user):
    a_node, b_node = nodes
    alice, bob = register(Api(a_node.url)), register(Api(a_node.url))
    sockets = [
        SocketClient(a_node.url, alice.token).connect(),
        SocketClient(b_node.url, bob.token).connect(),
        SocketClient(b_node.url, alice.token).connect(),  # alice's second tab, on the other process
    ]
    try:
        for socket in sockets:
            assert socket.call("join", {"userId": "ignored", "userName": "ignored"})["ok"] is True
        watcher = sockets[0]
        online = watcher.wait_for("onlineUsers", lambda users: len(users) == 2)
        assert sorted(u["userId"] for u in online) == sorted([alice.id, bob.id])
        assert len([e for e in watcher.received("userJoined") if e["userId"] == alice.id]) == 1
        sockets[1].close()
        left = watcher.wait_for("userLeft", lambda e: e["userId"] == bob.id)
        assert left == {"userId": bob.id, "userName": bob.username}
        assert [u["userId"] for u in watcher.wait_for("onlineUsers", lambda users: len(users) == 1)] == [alice.id]
    finally:
        for socket in sockets:
            socket.close()


def test_the_original_javascript_client_works_with_a_token(server, make_user):
    old, other, modern = make_user(), make_user(), make_user()
    env = {**os.environ, "URL": server.url, "TOKEN_A": old.token, "TOKEN_B": other.token, "TOKEN_C": modern.token,
           "NAME_A": old.username, "NAME_B": other.username}  # fmt: skip
    js = ROOT / "tests" / "js"
    result = subprocess.run(["node", "legacy.js"], cwd=js, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["joinedSelf"] == {"userId": old.id, "userName": old.username}
    assert _names(out["onlineAfterSelf"]) == [old.username]
    assert _names(out["onlineBoth"]) == sorted([old.username, other.username, modern.username])
    assert out["delivered"]["userName"] == old.username and out["delivered"]["messageBody"] == "hello, old friend"
    assert out["left"] == {"userId": other.id, "userName": other.username}
    assert _names(out["onlineAfterLeft"]) == [old.username]  # the modern client closed before
    assert out["modernSaw"] == []
