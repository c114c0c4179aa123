"""Several server processes behaving as one through Redis: broadcast, presence, evictions, faults, deploy."""

import json
import os
import shlex
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import websocket

from tests.support import ROOT, Api, LiveServer, RedisServer, SocketClient, assert_error
from tests.test_fanout import ordered


@pytest.fixture(scope="module")
def nodes(server_factory, redis_url):
    """Two server processes on one database and one Redis, on a channel of their own (module-wide: each test has
    users and rooms of its own, and closes its sockets)."""
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"chat-{uuid.uuid4().hex[:8]}", "NODE_TTL_SECONDS": 3}
    return server_factory(**env), server_factory(**env)


def test_broadcast_crosses_nodes_both_ways(nodes, joined_pair):
    a_node, b_node = nodes
    a, b = joined_pair(urls=(a_node.url, b_node.url)).sockets
    sent = a.call("message", {"messageBody": "from A"})["message"]
    assert b.wait_for("message") == sent
    back = b.call("message", {"messageBody": "from B"})["message"]
    assert a.wait_for("message", lambda m: m["id"] == back["id"]) == back


def test_a_mass_disconnect_takes_everyone_offline(server_factory, redis_url, make_user):
    """150 sockets leaving at once make more presence calls to Redis at a time than the pool holds (4 here): each
    waits for a connection instead of being refused (redis-py's own pool refused the 101st, and those sockets stayed
    in Redis's presence for good), so Redis forgets every one of them."""
    channel = f"chat-{uuid.uuid4().hex[:8]}"
    node = server_factory(REDIS_URL=redis_url, SOCKETIO_CHANNEL=channel, REDIS_MAX_CONNECTIONS=4)
    users = [make_user() for _ in range(30)]
    url = node.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sockets = [websocket.create_connection(url, timeout=30) for _ in range(150)]
    try:
        for i, ws in enumerate(sockets):
            assert ws.recv().startswith("0")
            ws.send("40" + json.dumps({"token": users[i % len(users)].token}))
        for ws in sockets:
            assert ws.recv().startswith("40")
            ws.send('420["join",{}]')
        for ws in sockets:
            ack = ws.recv()
            while not ack.startswith("430"):
                ack = ws.recv()
        present = f"{channel}:presence:{json.loads(ack[3:])[0]['room']}"
        assert len(client.hgetall(present)) == len(sockets)
        # Redis busy for half a second (a script that spins): every disconnect's presence call is in flight at once.
        busy = threading.Thread(target=client.eval, args=(_SPIN, 0, 500))
        busy.start()
        time.sleep(0.05)
    finally:
        for ws in sockets:
            ws.shutdown()  # gone at once, without waiting for the server's close frame
    busy.join()
    deadline = time.monotonic() + 10
    while left := client.hgetall(present):
        assert time.monotonic() < deadline, f"{len(left)} sockets still present in Redis"
        time.sleep(0.2)


_SPIN = """
local start = redis.call('TIME')
local now = start
while (now[1] - start[1]) * 1000000 + (now[2] - start[2]) < tonumber(ARGV[1]) * 1000 do now = redis.call('TIME') end
return 1
"""


def test_rest_send_on_one_node_reaches_sockets_on_the_other(nodes, connect, make_user):
    a_node, b_node = nodes
    alice, bob = make_user(), make_user()
    b = connect(bob, url=b_node.url)
    b.call("join", {})
    sent = Api(a_node.url).post("/api/send", alice.token, json={"messageBody": "over REST on A"}).json()
    assert b.wait_for("message") == sent


def test_a_message_s_states_never_go_back_when_users_on_both_nodes_react_at_once(nodes, connect, make_user):
    """Thirty users react at once, half through each process: each change is broadcast by the process that made it,
    to its own sockets at once and to the other's through Redis, so a socket meets the two processes' states in no
    set order. A client keeps the last state it got: no socket may get a state older than one it already has."""
    a_node, b_node = nodes
    author, users = make_user(), [make_user() for _ in range(30)]
    observers = [ordered(connect(author, url=a_node.url)), ordered(connect(author, url=b_node.url))]
    for observer in observers:
        assert observer.call("join", {})["ok"] is True
    message = Api(a_node.url).post("/api/send", author.token, json={"messageBody": "react to me"}).json()
    sessions = [Api((a_node, b_node)[i % 2].url) for i in range(len(users))]  # made beforehand: they leave together
    path = f"/api/messages/{message['id']}/reactions/{quote('👍')}"
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda i: sessions[i].put(path, users[i].token), range(len(users))))
    assert [answer.status_code for answer in answers] == [200] * len(users)
    for observer in observers:
        observer.wait_for("message_updated", lambda m: m["reactions"][0]["count"] == len(users), timeout=20)
        time.sleep(0.5)  # what else either process broadcast comes in meanwhile
        counts = [m["reactions"][0]["count"] for m in observer.received("message_updated") if m["id"] == message["id"]]
        assert counts == sorted(counts) and counts[-1] == len(users), counts


def test_presence_and_multi_tab_across_nodes(nodes, connect, make_user):
    a_node, b_node = nodes
    alice, bob = make_user(), make_user()
    watcher = connect(bob, url=a_node.url)
    room = watcher.call("join", {})["room"]
    tab_a, tab_b = connect(alice, url=a_node.url), connect(alice, url=b_node.url)
    tab_a.call("join", {})
    ack = tab_b.call("join", {})
    assert sorted(m["userId"] for m in ack["members"]) == sorted([alice.id, bob.id])
    watcher.wait_for("user_joined", lambda e: e["userId"] == alice.id)
    tab_a.call("left", {})
    members = Api(b_node.url).get(f"/api/rooms/{room}/members", bob.token).json()["members"]
    assert {m["user"]["id"]: m["online"] for m in members}[alice.id] is True
    tab_b.close()
    watcher.wait_for("user_left", lambda e: e["userId"] == alice.id)
    assert len([e for e in watcher.received("user_joined") if e["userId"] == alice.id]) == 1
    assert len([e for e in watcher.received("user_left") if e["userId"] == alice.id]) == 1


def test_removal_on_one_node_evicts_sockets_on_the_other(nodes, make_user, joined_pair):
    a_node, b_node = nodes
    owner, guest = make_user(), make_user()
    api_a = Api(a_node.url)
    room = api_a.post("/api/rooms", owner.token, json={"name": "crew", "private": True}).json()["id"]
    api_a.put(f"/api/rooms/{room}/members/{guest.id}", owner.token, json={"role": "member"})
    o, g = joined_pair((owner, guest), room, urls=(a_node.url, b_node.url)).sockets
    api_a.delete(f"/api/rooms/{room}/members/{guest.id}", owner.token)
    o.wait_for("user_left", lambda e: e["userId"] == guest.id)
    o.call("message", {"room": room, "messageBody": "guest is gone"})
    o.wait_for("message")
    assert g.call("typing", {"room": room, "typing": True})["error"]["code"] in ("forbidden", "not_found")
    assert not g.received("message")


def _posting_guest(a_node, b_node, connect, make_user):
    """A room made on node a; its member's socket on node b has posted once (so holds the right to post)."""
    owner, guest = make_user(), make_user()
    api_a = Api(a_node.url)
    room = api_a.post("/api/rooms", owner.token, json={"name": f"stage-{uuid.uuid4().hex[:6]}"}).json()["id"]
    api_a.put(f"/api/rooms/{room}/members/{guest.id}", owner.token, json={"role": "member"})
    g = connect(guest, url=b_node.url)
    g.call("join", {"room": room})
    assert g.call("message", {"room": room, "messageBody": "granted"})["ok"] is True

    def set_role(role):
        api_a.put(f"/api/rooms/{room}/members/{guest.id}", owner.token, json={"role": role})

    return g, room, set_role


def test_role_changes_on_one_node_reach_a_posting_socket_on_the_other(nodes, connect, make_user):
    g, room, set_role = _posting_guest(*nodes, connect, make_user)
    assert g.call("message", {"room": room, "messageBody": "two"})["ok"] is True
    set_role("readonly")
    assert g.call("message", {"room": room, "messageBody": "three"})["error"]["code"] == "forbidden"
    set_role("member")
    assert g.call("message", {"room": room, "messageBody": "four"})["ok"] is True


def test_a_role_change_missed_while_redis_is_down_still_applies(server_factory, connect, make_user, tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    env = {"REDIS_URL": redis.url, "SOCKETIO_CHANNEL": "chat-missed", "MEMBERSHIP_CACHE_SECONDS": 60}
    g, room, set_role = _posting_guest(server_factory(**env), server_factory(**env), connect, make_user)
    redis.stop()
    set_role("readonly")  # node b never hears of it: it re-checks its sockets while the queue is down
    deadline = time.monotonic() + 5  # QUEUE_DOWN_RECHECK_SECONDS (2), well before the cached right expires
    while g.call("message", {"room": room, "messageBody": "stale"})["ok"]:
        assert time.monotonic() < deadline, "a readonly member still posts through node b"
        time.sleep(0.2)


def test_logout_on_one_node_disconnects_sockets_on_the_other(nodes, connect, make_user):
    a_node, b_node = nodes
    user = make_user()
    client = connect(user, url=b_node.url)
    Api(a_node.url).post("/api/auth/logout", user.token)
    assert client.wait_for_disconnect(5)


def test_a_killed_node_takes_its_users_offline_within_the_expiry(nodes, server_factory, connect, make_user):
    a_node, _ = nodes
    doomed = server_factory(**{k: a_node.env[k] for k in ("REDIS_URL", "SOCKETIO_CHANNEL", "NODE_TTL_SECONDS")})
    alice, bob = make_user(), make_user()
    watcher = connect(bob, url=a_node.url)
    room = watcher.call("join", {})["room"]
    victim = connect(alice, url=doomed.url)
    victim.call("join", {})
    watcher.wait_for("user_joined", lambda e: e["userId"] == alice.id)
    doomed.proc.send_signal(signal.SIGKILL)
    left = watcher.wait_for("user_left", lambda e: e["userId"] == alice.id, timeout=10)
    assert left == {"room": room, "userId": alice.id, "userName": alice.username}
    members = Api(a_node.url).get(f"/api/rooms/{room}/members", bob.token).json()["members"]
    assert {m["user"]["id"]: m["online"] for m in members}[alice.id] is False


def test_redis_restart_mid_conversation(server_factory, joined_pair, tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    env = {"REDIS_URL": redis.url, "SOCKETIO_CHANNEL": "chat-restart"}
    a_node, b_node = server_factory(**env), server_factory(**env)
    a, b = joined_pair(urls=(a_node.url, b_node.url)).sockets
    a.call("message", {"messageBody": "before"})
    b.wait_for("message")
    redis.stop()
    down = a.call("message", {"messageBody": "while redis is down"})
    assert down["ok"] is True, "sends still store and ack"
    assert a.wait_for("message", lambda m: m["id"] == down["message"]["id"])
    health = Api(a_node.url).get("/api/health")
    assert health.status_code == 503 and health.json()["queue"] == "down" and health.json()["db"] == "ok"
    a.call("message", {"messageBody": "still down"})
    assert a_node.log().count("message queue) unreachable") == 1, "the outage is logged once"
    redis.start()
    deadline, delivered = time.monotonic() + 30, False
    while not delivered and time.monotonic() < deadline:
        sent = a.call("message", {"messageBody": "after the restart"})["message"]
        try:
            b.wait_for("message", lambda m, sent=sent: m["id"] == sent["id"], timeout=1)
            delivered = True
        except AssertionError:
            pass
    assert delivered, "broadcasts resumed without restarting the servers"
    assert Api(a_node.url).get("/api/health").json() == {"status": "ok", "db": "ok", "queue": "ok"}
    redis.stop()


def test_sigterm_drains_sockets_and_exits(server_factory, mongo_uri, make_user, tmp_path):
    node = server_factory()
    user = make_user()
    client = SocketClient(node.url, user.token).connect()
    client.call("join", {})
    acked = client.call("message", {"messageBody": "acked before shutdown"})["message"]
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    assert client.wait_for_disconnect(10), "clients are told to go"
    node.proc.wait(15)
    assert time.monotonic() - started < 12 and node.proc.returncode == 0
    assert "SIGTERM: draining" in node.log()
    client.close()
    other = LiveServer(mongo_uri, tmp_path).start()
    try:
        stored = Api(other.url).get("/api/messages", user.token).json()["messages"]
        assert stored[0]["id"] == acked["id"]
    finally:
        other.kill()


def _procfile_web():
    line = next(line for line in Path(ROOT, "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.split(":", 1)[1].strip()


def _serve_as_written(cmd, env, tmp_path):
    log = open(tmp_path / "procfile.log", "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


@pytest.mark.parametrize("runner", ["shell", "honcho"])
def test_procfile_web_command_serves_sockets(runner, server, make_user, tmp_path):
    port = LiveServer("", tmp_path).port
    venv_bin = str(Path(os.sys.executable).parent)
    env = {**server.env, "PORT": str(port), "PATH": venv_bin + os.pathsep + os.environ["PATH"], "HOST": "127.0.0.1"}
    if runner == "shell":
        cmd = ["bash", "-c", _procfile_web()]
    else:
        cmd = [os.path.join(venv_bin, "honcho"), "start", "-p", str(port), "web"]
        env.pop("PORT")
    proc, log = _serve_as_written(cmd, env, tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if Api(url).get("/api/health").status_code == 200:
                    break
            except OSError:
                time.sleep(0.2)
        user = make_user()
        client = SocketClient(url, user.token).connect()
        client.call("join", {})
        ack = client.call("message", {"messageBody": f"served by {shlex.quote(runner)}"})
        assert client.wait_for("message") == ack["message"]
        client.close()
        assert_error(Api(url).get("/api/users/me"), 401, "unauthorized")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()
