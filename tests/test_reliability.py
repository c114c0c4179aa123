"""Holes found by attacking the service, each closed: raw packets a client library never sends,
reserved event names, lone surrogates, binary floods, crafted cursors, anonymous connections,
stolen refresh tokens, expired tokens, and idempotency across archiving."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from socket import SHUT_WR, create_connection
from types import SimpleNamespace

import jwt
import pytest
import requests
import socketio
import websocket

from config import TestingConfig
from tests.support import ROOT, TEST_SECRET, Api, SocketClient, assert_error, register


class RawSocket:
    """A Socket.IO connection spoken by hand over a WebSocket, to send what no client library would."""

    def __init__(self, url, token=None):
        self.ws = websocket.create_connection(
            url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket", timeout=5
        )
        self.packets, self.ids = [], iter(range(1, 10**6))
        assert self.ws.recv().startswith("0")  # Engine.IO open
        if token is not None:
            self.ws.send("40" + json.dumps({"token": token}))
            assert self.next_packet(lambda p: p.startswith("40") or p.startswith("44")).startswith("40{")

    def next_packet(self, predicate, timeout=5):
        """Read packets (answering pings) until one matches; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                packet = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            if packet == "2":
                self.ws.send("3")
                continue
            self.packets.append(packet)
            if predicate(packet):
                return packet
        raise AssertionError(f"no matching packet within {timeout}s; got {self.packets}")

    def call(self, event, *args, timeout=5):
        """Emit with an ack id and return the ack's payload."""
        ack_id = next(self.ids)
        self.ws.send(f"42{ack_id}" + json.dumps([event, *args]))
        return self.ack(ack_id, timeout)

    def ack(self, ack_id, timeout=5):
        packet = self.next_packet(lambda p: p.startswith(f"43{ack_id}["), timeout)
        return json.loads(packet[len(f"43{ack_id}") :])[0]

    def events(self, name, settle=1.0):
        """The `name` events received so far, after waiting `settle` seconds for stragglers."""
        with contextlib.suppress(AssertionError):
            self.next_packet(lambda p: False, timeout=settle)
        return [json.loads(p[2:])[1] for p in self.packets if p.startswith("42[") and json.loads(p[2:])[0] == name]

    def close(self):
        self.ws.close()
        self.ws.shutdown()  # after the server's closing frame, websocket-client's close leaves the socket open


class RawPolling:
    """An Engine.IO long-polling session spoken by hand: polls only when told to, answers the pings it gets."""

    def __init__(self, url, token=None):
        self.http = requests.Session()
        base = url + "/socket.io/?EIO=4&transport=polling"
        self.url = f"{base}&sid={json.loads(self.http.get(base, timeout=5).text[1:])['sid']}"
        self.packets, self.responses = [], []
        if token is not None:
            self.post("40" + json.dumps({"token": token}))
            assert self.poll_until(lambda p: p[:2] in ("40", "44")).startswith("40{")

    def post(self, *packets):
        response = self.http.post(self.url, data="\x1e".join(packets).encode(), timeout=5)
        assert response.status_code == 200, response.text

    def poll(self):
        """One poll's packets, or None when the session is gone (400)."""
        response = self.http.get(self.url, timeout=30)
        if response.status_code != 200:
            return None
        packets = response.text.split("\x1e")
        self.responses.append(len(packets))
        self.packets += packets
        if "2" in packets:
            self.post(*["3"] * packets.count("2"))
        return packets

    def poll_until(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for packet in self.poll() or ():
                if predicate(packet):
                    return packet
        raise AssertionError(f"no matching packet within {timeout}s; got {self.packets[-20:]}")

    def close(self):
        self.http.close()


@pytest.fixture
def raw(server):
    opened = []

    def open_raw(user=None, url=None):
        socket = RawSocket(url or server.url, user.token if user else None)
        opened.append(socket)
        return socket

    yield open_raw
    for socket in opened:
        socket.close()


def _private_room(api, owner, member):
    room = api.post("/api/rooms", owner.token, json={"name": f"p-{uuid.uuid4().hex[:8]}", "private": True}).json()
    assert api.put(f"/api/rooms/{room['id']}/members/{member.id}", owner.token, json={"role": "member"}).ok
    return room


@pytest.mark.parametrize("name", ["disconnect", "connect", "connect_error", "*", "__disconnect_final", "nope"])
def test_reserved_and_unknown_event_names_get_the_not_found_ack(raw, make_user, name):
    socket = raw(make_user())
    ack = socket.call(name, "x")
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"
    assert socket.call("join", {})["ok"] is True, "the connection survives"


def test_packets_whose_event_is_not_a_name_get_the_not_found_ack(raw, make_user):
    socket = raw(make_user())
    for ack_id, body in ((7, "[1, 2]"), (8, "[]"), (9, '[{"a": 1}]')):
        socket.ws.send(f"42{ack_id}{body}")
        assert socket.ack(ack_id)["error"]["code"] == "not_found"
    assert socket.call("join", {})["ok"] is True


def test_a_client_event_named_disconnect_does_not_hide_the_socket_from_removal(api, raw, connect, make_user):
    owner, member = make_user(), make_user()
    room = _private_room(api, owner, member)["id"]
    spy = raw(member)
    assert spy.call("join", {"room": room})["ok"] is True
    spy.ws.send('42["disconnect","x"]')  # no ack id: python-socketio used to run our disconnect handler
    spy.call("disconnect", "transport close")
    assert api.delete(f"/api/rooms/{room}/members/{member.id}", owner.token).status_code == 204
    speaker = connect(owner)
    speaker.call("join", {"room": room})
    assert speaker.call("message", {"room": room, "messageBody": "members only"})["ok"] is True
    speaker.wait_for("message")
    assert spy.events("message") == [], "a removed member still reads the private room"


def test_lone_surrogates_are_validation_errors_over_rest_and_sockets(api, raw, make_user):
    user = make_user()
    headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
    bodies = {
        "/api/send": ['{"messageBody": "a\\ud800"}', '{"messageBody": "ok", "clientId": "\\udfff"}'],
        "/api/rooms": ['{"name": "\\ud83d"}', '{"name": "fine", "description": "\\ud800"}'],
        "/api/auth/register": ['{"username": "surrogate", "password": "password-123", "displayName": "\\udc00"}'],
    }
    for path, payloads in bodies.items():
        for payload in payloads:
            response = requests.post(api.url + path, data=payload, headers=headers, timeout=10)
            assert_error(response, 400, "validation_error")
    socket = raw(user)
    socket.ws.send('421["message",{"messageBody":"x\\ud800y"}]')
    assert socket.ack(1)["error"]["code"] == "validation_error"
    assert socket.call("message", {"messageBody": "a real emoji 👍"})["ok"] is True


def test_a_lone_surrogate_never_fails_other_users_concurrent_sends(api, make_user):
    users = [make_user() for _ in range(6)]
    statuses = []

    def send(user, n):
        body = '{"messageBody": "bad \\ud800"}' if n % 4 == 0 else json.dumps({"messageBody": f"m{n}"})
        headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
        statuses.append((n % 4 == 0, requests.post(api.url + "/api/send", data=body, headers=headers).status_code))

    threads = [threading.Thread(target=send, args=(users[n % 6], n)) for n in range(120)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(set(statuses)) == [(False, 201), (True, 400)]


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_binary_packets_are_refused_and_their_attachments_dropped(server_factory, make_user):
    node = server_factory()
    user = register(Api(node.url))
    socket = RawSocket(node.url, user.token)
    try:
        socket.ws.send('451000-1["message",{"_placeholder":true,"num":0}]')  # claims 1000 attachments
        assert socket.ack(1)["error"]["code"] == "validation_error"
        before = _rss_kib(node.proc.pid)
        chunk = os.urandom(900_000)
        for _ in range(100):
            socket.ws.send_binary(chunk)
        assert socket.call("join", {}, timeout=60)["ok"] is True, "the connection survives"
        grown_mib = (_rss_kib(node.proc.pid) - before) / 1024
        assert grown_mib < 30, f"90 MB of never-completed attachments grew the server by {grown_mib:.0f} MiB"
    finally:
        socket.close()


@pytest.mark.parametrize("cursor", ["after=ffffffffffffffffffffffff", "before=000000000000000000000000"])
def test_crafted_cursors_are_validation_errors(api, make_user, cursor):
    user = make_user()
    api.post("/api/send", user.token, json={"messageBody": "anchor"})
    assert_error(api.get(f"/api/messages?{cursor}", user.token), 400, "validation_error")


def test_a_cursor_from_another_room_is_a_validation_error(api, connect, make_user):
    user = make_user()
    side = api.post("/api/rooms", user.token, json={"name": "side"}).json()["id"]
    elsewhere = api.post("/api/send", user.token, json={"room": side, "messageBody": "there"}).json()["id"]
    assert_error(api.get(f"/api/messages?after={elsewhere}", user.token), 400, "validation_error")
    socket = connect(user)
    socket.call("join", {})
    assert socket.call("sync", {"after": elsewhere})["error"]["code"] == "validation_error"


def test_left_tells_a_non_member_nothing_about_a_private_room(api, connect, make_user):
    owner, member, outsider = make_user(), make_user(), make_user()
    room = _private_room(api, owner, member)
    socket = connect(outsider)
    for ref in (room["name"], room["id"]):
        ack = socket.call("left", {"room": ref})
        assert ack["ok"] is False and ack["error"]["code"] == "not_found"
        assert room["id"] not in json.dumps(ack) or ref == room["id"]


def test_a_retry_after_its_message_was_archived_returns_the_original(server, api, make_user, db):
    user = make_user()
    first = api.post("/api/send", user.token, json={"messageBody": "long ago", "clientId": "old-1"})
    assert first.status_code == 201
    job = subprocess.run(
        [sys.executable, "-m", "jobs.archive", "--older-than-days", "0"],
        cwd=ROOT,
        env={**os.environ, "MONGODB_URI": server.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET, "GAP_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert job.returncode == 0 and "moved 1" in job.stdout, job.stdout + job.stderr
    retry = api.post("/api/send", user.token, json={"messageBody": "long ago", "clientId": "old-1"})
    assert retry.status_code == 200
    assert retry.json() == {**first.json(), "archived": True}
    assert db.messages.count_documents({"stub": None, "gap": None}) == 0, "a second copy was stored"
    assert api.get("/api/messages", user.token).json()["messages"] == []


def test_connections_that_never_authenticate_are_closed(server_factory, make_user):
    node = server_factory(AUTH_TIMEOUT_SECONDS=1)
    user = register(Api(node.url))
    anonymous, signed_in = RawSocket(node.url), RawSocket(node.url, user.token)
    try:
        deadline = time.monotonic() + 6
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while time.monotonic() < deadline:
                anonymous.ws.settimeout(0.5)
                try:
                    anonymous.ws.recv() or anonymous.ws.send("3")
                except websocket.WebSocketTimeoutException:
                    anonymous.ws.send("3")
        assert time.monotonic() < deadline
        assert signed_in.call("join", {})["ok"] is True, "an authenticated connection stays"
    finally:
        anonymous.close()
        signed_in.close()


def test_a_connect_the_server_cannot_take_is_refused_with_the_error_object(server):
    """A second CONNECT to the namespace a socket is already in, or one to a namespace the server does not serve, is
    answered CONNECT_ERROR with the error object as its data, as a refused token is; the socket in the namespace
    stays."""
    user = register(Api(server.url))
    raw = RawSocket(server.url, user.token)
    try:
        raw.ws.send("40" + json.dumps({"token": user.token}))
        again = json.loads(raw.next_packet(lambda p: p.startswith("44"))[2:])
        assert again["data"]["error"]["code"] == "conflict" and again["message"], again
        raw.ws.send("40/admin,")
        elsewhere = json.loads(raw.next_packet(lambda p: p.startswith("44/admin,"))[len("44/admin,") :])
        assert elsewhere["data"]["error"]["code"] == "not_found" and elsewhere["message"], elsewhere
        assert raw.call("join", {})["ok"] is True
    finally:
        raw.close()


def test_a_connect_whose_auth_is_not_json_is_refused_at_once(server):
    """A CONNECT whose auth cannot be read is answered CONNECT_ERROR with `validation_error`, not left for the
    connection to be closed at AUTH_TIMEOUT_SECONDS; a good CONNECT after it is taken."""
    user = register(Api(server.url))
    raw = RawSocket(server.url)
    try:
        raw.ws.send('40{"token": ')
        refused = json.loads(raw.next_packet(lambda p: p.startswith("44"), timeout=3)[2:])
        assert refused["data"]["error"]["code"] == "validation_error" and refused["message"], refused
        raw.ws.send("40" + json.dumps({"token": user.token}))
        assert raw.next_packet(lambda p: p.startswith("4")).startswith('40{"sid"')
    finally:
        raw.close()


def test_a_packet_type_written_as_another_scripts_digit_is_guarded_as_the_ascii_one(server):
    """python-socketio reads any Unicode decimal digit as a packet's type (`int`): a CONNECT or an event with unreadable
    JSON, or a binary event, whose type is written so is answered as the ASCII one is, and a namespace's query is left
    out of the refusal as the decoder leaves it out."""
    user = register(Api(server.url))
    raw = RawSocket(server.url)
    try:
        raw.ws.send("4\u0660{bad")  # ARABIC-INDIC DIGIT ZERO: a CONNECT
        refused = json.loads(raw.next_packet(lambda p: p.startswith("44"), timeout=3)[2:])
        assert refused["data"]["error"]["code"] == "validation_error", refused
        raw.ws.send("40/admin?x=1,{bad")
        assert raw.next_packet(lambda p: p.startswith("44"), timeout=3).startswith("44/admin,{")
        raw.ws.send("40" + json.dumps({"token": user.token}))
        assert raw.next_packet(lambda p: p.startswith("4")).startswith('40{"sid"')
        raw.ws.send("4\uff127{bad")  # FULLWIDTH DIGIT TWO: an EVENT, ack id 7
        assert raw.ack(7, timeout=3)["error"]["code"] == "validation_error"
        raw.ws.send('4\u06653-8["join",{}]')  # a BINARY_EVENT announcing three attachments
        assert raw.ack(8, timeout=3)["error"]["code"] == "validation_error"
        assert raw.call("join", {})["ok"] is True, "no later packet is taken for an attachment"
    finally:
        raw.close()


def stays_open(raw, seconds):
    """Whether the connection is still open after `seconds` of answering the server's pings."""
    try:
        with contextlib.suppress(AssertionError):
            raw.next_packet(lambda p: p == "", timeout=seconds)  # websocket-client reads a closing frame as ""
        raw.ws.send("3")
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return False
    return raw.packets[-1:] != [""]


@pytest.mark.parametrize("leaver", ["client", "server"])
def test_a_connection_whose_namespace_left_is_anonymous_again(server_factory, leaver):
    """Leaving the namespace (the client's `41`, or the server's at logout) leaves an Engine.IO connection that
    counts in MAX_CONNECTIONS and in no user's MAX_SOCKETS_PER_USER: it has AUTH_TIMEOUT_SECONDS to join again,
    like a new one, and is closed if it does not, however faithfully it answers pings."""
    node = server_factory(AUTH_TIMEOUT_SECONDS=1, SOCKET_PING_INTERVAL=1, SOCKET_PING_TIMEOUT=5)
    api = Api(node.url)
    user, other = register(api), register(api)
    left, rejoined = RawSocket(node.url, user.token), RawSocket(node.url, other.token)
    try:
        time.sleep(2.5)  # the watch of new connections, once a second, has seen both authenticated
        if leaver == "client":
            left.ws.send("41")
        else:
            assert api.post("/api/auth/logout", user.token).status_code == 204
            assert left.next_packet(lambda p: p == "41") == "41"
        rejoined.ws.send("41")
        rejoined.ws.send("40" + json.dumps({"token": other.token}))  # joins again on the same connection
        assert rejoined.next_packet(lambda p: p.startswith("40")).startswith("40{")
        assert not stays_open(left, 4), "a connection with no namespace stayed past AUTH_TIMEOUT_SECONDS"
        assert stays_open(rejoined, 0.5)
        assert rejoined.call("join", {})["ok"] is True, "a connection that joined again stays"
    finally:
        left.close()
        rejoined.close()
        api.http.close()


def test_leaving_a_namespace_it_never_joined_does_not_keep_an_anonymous_connection(server_factory):
    node = server_factory(AUTH_TIMEOUT_SECONDS=1)
    anonymous = RawSocket(node.url)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 6:
            with contextlib.suppress(websocket.WebSocketConnectionClosedException, ConnectionError):
                anonymous.ws.send("41")  # python-socketio ignores it: no reason to wait any longer
            if not stays_open(anonymous, 0.3):
                break
        assert time.monotonic() - started < 4, "an anonymous connection outlived AUTH_TIMEOUT_SECONDS"
    finally:
        anonymous.close()


def test_a_connection_closed_by_the_server_cannot_join_before_it_goes(server_factory):
    """The server closed it (anonymous too long); its client ignores the close and sends a connect and an event
    while the server still waits for its closing frame: no Socket.IO state is made for a session that is gone."""
    node = server_factory(AUTH_TIMEOUT_SECONDS=1)
    user = register(Api(node.url))
    mark = len(node.log())
    late = RawSocket(node.url)
    try:
        late.next_packet(lambda p: p == "1", timeout=10)  # engine.io's close, before the closing frame
        late.ws.send("40" + json.dumps({"token": user.token}))
        late.ws.send("421" + json.dumps(["join", {}]))
        stays_open(late, 1)  # reads what comes for a second, whether the server shuts it meanwhile or not
        assert not [p for p in late.packets if p.startswith(("40", "43"))], late.packets
    finally:
        late.close()
    time.sleep(0.5)
    assert "Traceback" not in node.log()[mark:]


def test_a_session_that_stopped_polling_does_not_hold_up_closing_the_others(server_factory):
    """A session the server closes without waiting: a poller that left the namespace and stopped polling never
    takes what is queued, and the connections watched after it are closed on time all the same."""
    node = server_factory(AUTH_TIMEOUT_SECONDS=1)
    api = Api(node.url)
    poller = RawPolling(node.url, register(api).token)
    try:
        time.sleep(2.5)  # the watch of new connections has seen it authenticated
        poller.post("41")  # and it never polls again
        watched = RawSocket(node.url)  # watched with it: a close that waited for a poll would wait here for good
        try:
            assert not stays_open(watched, 4), "an anonymous connection outlived AUTH_TIMEOUT_SECONDS"
        finally:
            watched.close()
        assert poller.poll() is None, "the session that left is still served"
    finally:
        poller.close()
        api.http.close()


def test_a_polling_client_may_post_more_packets_at_once_than_engineio_decodes_by_default(api, make_user):
    """socket.io-client sends what it buffered during a POST in the next one: 100 events in one body."""
    user = make_user()
    room = api.post("/api/rooms", user.token, json={"name": f"post-{uuid.uuid4().hex[:8]}"}).json()["id"]
    poller = RawPolling(api.url, user.token)
    try:
        poller.post("421" + json.dumps(["join", {"room": room}]))
        poller.poll_until(lambda p: p.startswith("431["))
        events = [f"42{n}" + json.dumps(["message", {"room": room, "messageBody": str(n)}]) for n in range(2, 102)]
        poller.post(*events)
        acks = set()
        deadline = time.monotonic() + 30
        while len(acks) < 100 and time.monotonic() < deadline:
            acks |= {p.split("[", 1)[0] for p in poller.poll() or () if p.startswith("43")}
        assert acks == {f"43{n}" for n in range(2, 102)}
        assert len(api.get(f"/api/messages?room={room}&limit=100", user.token).json()["messages"]) == 100
    finally:
        poller.close()


@pytest.mark.parametrize(
    "body",
    [b"x", b"4hi\x1e", b"d=", b"\xff\xfe", b"\x1e" * 600_000, b"4" + b"[" * 100_000],
    ids=[
        "no packet type",
        "an empty packet",
        "an empty JSONP body",
        "not UTF-8",
        "more packets than a payload holds",
        "JSON nested deeper than the parser goes",
    ],
)
def test_a_post_that_is_no_payload_ends_its_session_with_a_400(server, make_user, body):
    """A polling client's body engine.io cannot read is a client error, as engine.io's own errors are: 400, and the
    session ends. engine.io answered 200, dropped the whole POST unread and logged a traceback."""
    poller = RawPolling(server.url, make_user().token)
    mark = len(server.log())
    try:
        assert poller.http.post(poller.url, data=body, timeout=10).status_code == 400
        assert poller.poll() is None, "the session outlived a POST it could not read"
    finally:
        poller.close()
    assert "Traceback" not in server.log()[mark:]


@pytest.mark.parametrize("frame", ["x", "", "4" + "[" * 100_000], ids=["no packet type", "empty", "deep JSON"])
def test_a_websocket_frame_that_is_no_packet_closes_the_connection_without_a_traceback(server, make_user, frame):
    socket = RawSocket(server.url, make_user().token)
    mark = len(server.log())
    try:
        socket.ws.send(frame)
        assert not stays_open(socket, 2), "a connection that sent no packet was kept"
    finally:
        socket.close()
    assert "Traceback" not in server.log()[mark:]


def test_a_polling_client_draining_a_backlog_keeps_its_session(server_factory):
    """A poll's response holds at most 16 packets, so a ping queued behind a backlog leaves late: the client's
    pong is due SOCKET_PING_TIMEOUT after the ping left, and a client that keeps polling gets everything."""
    node = server_factory(SOCKET_PING_INTERVAL=1, SOCKET_PING_TIMEOUT=2)
    api = Api(node.url)
    sender, reader = register(api), register(api)
    room = api.post("/api/rooms", sender.token, json={"name": f"backlog-{uuid.uuid4().hex[:8]}"}).json()["id"]
    poller, raw = RawPolling(node.url, reader.token), RawSocket(node.url, sender.token)
    try:
        poller.post("421" + json.dumps(["join", {"room": room}]))
        poller.poll_until(lambda p: p.startswith("431["))
        assert raw.call("join", {"room": room})["ok"] is True
        for n in range(600):  # not waiting for acks: about 9 s of polls, 16 packets and 0.25 s apart
            raw.ws.send(f"42{n + 10}" + json.dumps(["message", {"room": room, "messageBody": str(n)}]))
        received = []
        while len(received) < 600:
            packets = poller.poll()
            assert packets is not None, f"the session ended after {len(received)} of 600 messages"
            received += [json.loads(p[2:])[1]["messageBody"] for p in packets if p.startswith('42["message"')]
            time.sleep(0.25)
        assert received == [str(n) for n in range(600)]
        assert max(poller.responses) <= 16
    finally:
        poller.close()
        raw.close()
        api.http.close()


def test_reusing_a_rotated_refresh_token_revokes_its_family_and_its_sockets(api, connect, make_user):
    user = make_user()
    other = api.post("/api/auth/login", json={"username": user.username, "password": user.password}).json()
    rotated = api.post("/api/auth/refresh", user.refresh).json()
    fresh = connect(SimpleNamespace(token=rotated["accessToken"]))
    assert_error(api.post("/api/auth/refresh", user.refresh), 401, "unauthorized")  # the stolen copy comes back
    assert_error(api.post("/api/auth/refresh", rotated["refreshToken"]), 401, "unauthorized")
    assert_error(api.get("/api/users/me", rotated["accessToken"]), 401, "unauthorized")
    fresh.wait_for_disconnect(5)
    assert not fresh.sio.connected, "a socket of the revoked family is still served"
    assert api.get("/api/users/me", other["accessToken"]).status_code == 200, "another login is another family"


def _short_lived_token(user_id, seconds):
    now = int(time.time())
    claims = {"fresh": False, "iat": now, "nbf": now, "jti": str(uuid.uuid4()), "type": "access",
              "sub": user_id, "exp": now + seconds, "fam": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


def test_a_socket_whose_token_expired_is_refused_and_disconnected(server_factory, make_user):
    # A server of its own, whose sweep of expired sockets (every TOKEN_EXPIRY_CHECK_SECONDS) cannot disconnect the
    # socket between the expiry and the event: the ack would never come.
    node = server_factory(TOKEN_EXPIRY_CHECK_SECONDS=3600)
    user = make_user()
    token = _short_lived_token(user.id, 2)
    client = SocketClient(node.url, token).connect()
    try:
        assert client.call("join", {})["ok"] is True
        expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
        time.sleep(max(0, expiry - time.time()) + 0.05)  # until the token has expired, and no longer
        ack = client.call("message", {"messageBody": "too late"})
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
        client.wait_for_disconnect(5)
        assert not client.sio.connected
    finally:
        client.close()


def test_join_churn_and_sockets_per_user_are_limited(server_factory):
    node = server_factory(RATE_LIMITS_ENABLED="true", JOIN_RATE_LIMIT="4/minute", MAX_SOCKETS_PER_USER=2)
    user = register(Api(node.url))
    first, second = SocketClient(node.url, user.token).connect(), SocketClient(node.url, user.token).connect()
    try:
        acks = [first.call("join", {}), first.call("left", {}), first.call("join", {}), first.call("left", {})]
        assert all(ack["ok"] for ack in acks)
        refused = first.call("join", {})
        assert refused["ok"] is False and refused["error"]["code"] == "rate_limited"
        third, refusals = socketio.Client(reconnection=False), []
        third.on("connect_error", lambda data=None: refusals.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            third.connect(node.url, auth={"token": user.token}, transports=["websocket"], wait_timeout=5)
        assert refusals[0]["data"]["error"]["code"] == "rate_limited"
    finally:
        first.close()
        second.close()


def test_an_upgrade_that_moved_a_patched_internal_refuses_to_start():
    from utils import transport

    class Moved:
        def _handle_event(self, eio_sid, data):
            """A python-socketio of the future, whose method takes other parameters."""

    class FakeServer:
        manager_initialized = False

        class eio:
            async_mode = "threading"
            _async = {"queue": 1, "websocket": 1}

        class manager:
            rooms = {}

    with pytest.raises(transport.InternalsMoved, match=r"Moved\._handle_event no longer takes"):
        transport.check_internals(FakeServer, ((Moved, "_handle_event", ("eio_sid", "namespace", "id", "data")),))
    with pytest.raises(transport.InternalsMoved, match=r"_thread is gone"):
        transport.check_internals(FakeServer, ((Moved, "_thread", ()),))
    transport.check_internals(FakeServer)  # the pinned versions have every name

    class MovedEmit:
        def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, **kwargs):
            """A manager whose emit lost `to`: fanout.FanoutManager would pass it as **kwargs."""

    fanout_emit = next(m for m in transport.METHODS if m[1] == "emit")
    with pytest.raises(transport.InternalsMoved, match=r"MovedEmit\.emit no longer takes"):
        transport.check_internals(FakeServer, ((MovedEmit, *fanout_emit[1:]),))
    # Lines fanout's order rests on (checked under eventlet; tests/test_fanout.py checks them there).
    assert transport.moved_behaviours(
        [("engineio.socket", "Socket", "send", "self.queue.put(pkt)"), ("engineio.socket", "Socket", "gone", "")]
    ) == ["engineio.socket.Socket.gone is gone"]
    assert transport.moved_behaviours([("socketio.pubsub_manager", "PubSubManager", "_handle_emit", "emit(now)")]) == [
        "socketio.pubsub_manager.PubSubManager._handle_emit no longer does `emit(now)`"
    ]


def test_control_messages_never_reach_clients_and_a_pickled_payload_runs_nothing(server_factory, redis_url, tmp_path):
    import pickle

    import redis

    channel = f"pickle-{uuid.uuid4().hex[:6]}"
    node = server_factory(REDIS_URL=redis_url, SOCKETIO_CHANNEL=channel)
    user = register(Api(node.url))
    client = SocketClient(node.url, user.token).connect()
    try:
        room = client.call("join", {})["room"]
        marker = tmp_path / "pwned"

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        redis.Redis.from_url(redis_url).publish(channel, pickle.dumps(Exploit()))
        # Published after the pickle, by another process's emitter: once the client has it, the
        # server's listener has handled the pickle (an unpickling one would have run it by then).
        socketio.RedisManager(redis_url, channel=channel, write_only=True).emit("probe", {"n": 1}, room=room)
        assert client.wait_for("probe") == {"n": 1}
        assert client.call("message", {"messageBody": "still here"})["ok"] is True
        client.wait_for("message")
        assert not marker.exists(), "a pickled queue message was executed"
        assert not [name for name, _ in client.events if name.startswith("chat:")]
    finally:
        client.close()


def test_join_and_left_churn_is_coalesced_for_the_room(connect, make_user):
    """A rejoin within the grace after a left is never broadcast, also when the wait of an earlier departure ends
    after the next one. Only a rejoin the client could not make in time (from sending `left` to the rejoin's ack
    took longer than the grace: a loaded machine) may be told again."""
    grace = TestingConfig.PRESENCE_GRACE_MS.read(os.environ) / 1000
    watcher, churner = make_user(), make_user()
    room_socket = connect(watcher)
    room_socket.call("join", {})
    flapping = connect(churner)
    assert flapping.call("join", {})["ok"]
    late = 0
    for _ in range(9):
        left_sent = time.monotonic()
        assert flapping.call("left", {})["ok"]
        time.sleep(grace / 4)  # back well within the grace...
        assert flapping.call("join", {})["ok"]
        late += time.monotonic() - left_sent >= grace
        time.sleep(grace * 0.6)  # ...and gone again just before the last departure's wait ends: it must tell nothing
    assert flapping.call("left", {})["ok"]
    deadline = time.monotonic() + 10
    while True:  # until the last left is told: then every pair told is complete
        joined = [e for e in room_socket.received("user_joined") if e["userId"] == churner.id]
        left = [e for e in room_socket.received("user_left") if e["userId"] == churner.id]
        if len(joined) == len(left) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(joined) == len(left) <= 1 + late, f"ten join/left pairs, {late} rejoins late, broadcast {len(joined)}"


@pytest.mark.parametrize("payload", ["[" * 100_000 + "]" * 100_000, '{"messageBody": "unterminated'])
def test_an_event_whose_json_cannot_be_read_gets_an_error_ack(raw, make_user, payload):
    socket = raw(make_user())
    socket.ws.send(f'421["message",{payload}]')
    assert socket.ack(1)["error"]["code"] == "validation_error"
    assert socket.call("join", {})["ok"] is True, "the connection survives"


def test_a_chunked_post_is_read_and_one_past_the_limit_refused(server, make_user):
    """A polling POST whose body comes in chunks (a proxy may forward one so), not with a Content-Length: its events
    are read and answered. engine.io read Content-Length bytes, none, answered 200 and dropped the events."""
    user = make_user()
    poller = RawPolling(server.url, user.token)
    try:
        chunks = ["421" + json.dumps(["join", {}]), "\x1e", "422" + json.dumps(["message", {"messageBody": "chunked"}])]
        answer = poller.http.post(poller.url, data=iter(chunk.encode() for chunk in chunks), timeout=10)
        assert answer.status_code == 200 and answer.request.headers.get("Transfer-Encoding") == "chunked"
        ack = poller.poll_until(lambda p: p.startswith("432["))
        assert json.loads(ack[3:])[0]["message"]["messageBody"] == "chunked"
        too_long = iter([b"4" + b"x" * 600_000] * 2)  # over SOCKET_MAX_BUFFER (1 MB) only in chunks
        assert poller.http.post(poller.url, data=too_long, timeout=10).status_code == 400
    finally:
        poller.close()


def test_a_chunked_post_cut_off_inside_a_chunk_ends_its_session_with_a_400(server, make_user):
    """The client half-closes with a chunk's bytes still owed (an aborted upload): 400 and the session ends, no
    traceback. engine.io's catch-all logged eventlet's end-of-file error, answered 200 and kept the session."""
    poller = RawPolling(server.url, make_user().token)
    mark = len(server.log())
    event = ("421" + json.dumps(["join", {}])).encode()
    host, port = server.url.split("//")[1].split(":")
    with create_connection((host, int(port)), timeout=10) as raw:
        head = f"POST {poller.url.split(port, 1)[1]} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        raw.sendall(head.encode() + b"%x\r\n" % (len(event) + 50) + event)
        raw.shutdown(SHUT_WR)
        answer = raw.recv(4096).decode()
    try:
        assert answer.startswith("HTTP/1.1 400"), answer
        assert poller.poll() is None, "the session outlived a body it could not read"
    finally:
        poller.close()
    assert "Traceback" not in server.log()[mark:]


def test_events_posted_with_the_namespaces_disconnect_are_all_handled(server, make_user, db):
    """A polling client's last POST: its events, then `41`. Each event is handled before the namespace is left."""
    user = make_user()
    poller = RawPolling(server.url, user.token)
    sent = [f"posted-{n}" for n in range(15)]  # with the `41`, as many packets as a payload holds
    try:
        poller.post(
            *[f"42{n}" + json.dumps(["message", {"messageBody": "bye", "clientId": c}]) for n, c in enumerate(sent, 1)],
            "41",
        )
    finally:
        poller.close()
    deadline = time.monotonic() + 10
    while (stored := db.messages.count_documents({"client_id": {"$in": sent}})) < len(sent):
        assert time.monotonic() < deadline, f"{stored} of {len(sent)} events posted before the disconnect were handled"
        time.sleep(0.1)
