"""engine.io sessions with no greenlet or timer of their own while idle (utils/transport/sessions.py): one pinger
per process keeps answering clients connected, on WebSocket and long-polling alike, and a client that stops
answering pings, or stops reading altogether, is disconnected and shut down.

An upgraded connection is read with no greenlet while it waits (the HTTP server's greenlet ends at the
handshake): frames that arrive together, in pieces or inside one TLS record are all read, and every connection
that ends, whoever ends it, leaves no descriptor behind.

No timing is asserted: pings come every 2 s here and a pong may be 5 s late; the waits are generous bounds.
"""

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests
import websocket

from tests.support import ROOT, Api, register, self_signed_certificate
from tests.test_fanout import LogMark, Room, client_ids, send_all

SHUT_DOWN = re.compile(r"pong late, connection shut down")


@pytest.fixture(scope="module")
def node(server_factory):
    return server_factory(LOG_LEVEL="DEBUG", SOCKET_PING_INTERVAL=2, SOCKET_PING_TIMEOUT=5)


def wait_for_log(mark, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while not pattern.search(mark.server.log()[mark.offset :]):
        assert time.monotonic() < deadline, f"the server never logged {pattern.pattern!r}"
        time.sleep(0.2)


def read_until_closed(raw):
    """Read without answering pings until the server closes the connection; return the pings it sent."""
    raw.ws.settimeout(60)  # far past a ping interval and a ping timeout: a connection still open fails here
    pings = 0
    while True:
        try:
            data = raw.ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return pings
        if not data:
            return pings
        pings += data == "2"


def test_clients_that_answer_pings_stay_connected_on_websocket_and_long_polling(node):
    with Room(node, 4) as room:
        on_websocket = room.connect(room.users[0], node.url)
        on_polling = room.connect(room.users[1], node.url, transports=["polling"])
        upgraded = room.connect(room.users[2], node.url, transports=["polling", "websocket"])
        raw = room.raw(room.users[3], node.url)
        answered = 0
        while answered < 4:  # four pings answered: every socket here went through several ping rounds
            answered += raw.read_one() == "2"
        clients = (on_websocket, on_polling, upgraded)
        assert not any(client.gone.is_set() for client in clients)
        expected = send_all([on_polling], room.id, 3, "alive")
        for client in clients:
            assert client_ids(client, "alive", 3) == expected
        assert raw.messages("alive", 3) == expected


def test_a_websocket_that_stops_answering_pings_is_disconnected_and_leaves_the_room(node):
    with Room(node, 2) as room:
        watcher = room.connect(room.users[0], node.url)
        raw = room.raw(room.users[1], node.url)
        mark = LogMark(node)
        pings = read_until_closed(raw)  # reads everything, answers nothing
        assert pings >= 1
        wait_for_log(mark, SHUT_DOWN)
        left = watcher.wait_for("user_left", lambda e: e["userId"] == room.users[1].id, timeout=30)
        assert left["room"] == room.id


def test_a_client_that_stops_reading_is_shut_down_while_the_others_get_everything(node):
    with Room(node, 3) as room:
        sender, reader = [room.connect(user, node.url) for user in room.users[:2]]
        slow = room.raw(room.users[2], node.url)
        mark = LogMark(node)
        expected = []
        # 4 kB frames, piling up for the slow reader (in the kernel, then on the server: a greenlet waits to write
        # to it, and so do its pings); it reads nothing and answers no ping, until the server shuts it down.
        while not SHUT_DOWN.search(node.log()[mark.offset :]):
            assert len(expected) < 4000, "the server never shut the slow reader down"
            expected += send_all([sender], room.id, 50, "stop", body="y" * 3900, start=len(expected))
        expected += send_all([sender], room.id, 20, "stop", body="after", start=len(expected))
        for client in (sender, reader):
            assert client_ids(client, "stop", len(expected)) == expected
        read_until_closed(slow)  # what the kernel held, then the end of the connection


def websocket_handshake(url, sid=None, context=None):
    """A TCP (or TLS) socket on which the WebSocket handshake is done, and the bytes read past its answer."""
    host, port = url.split("://")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    query = "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
    sock.sendall(
        f"GET /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, rest = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


class BareWebSocket:
    """A Socket.IO client written frame by frame on a TCP (or TLS) socket, so that frames can be sent together in
    one write or a frame in pieces, as no client library does on purpose."""

    def __init__(self, url, token, context=None):
        self.sock, self.buffer = websocket_handshake(url, context=context)
        assert self.read().startswith("0")  # engine.io open
        self.sock.sendall(frame("40" + json.dumps({"token": token})))
        assert self.read().startswith("40")
        self.acks = {}

    def take(self, count):
        while len(self.buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buffer += data
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def read(self):
        """The next text frame's text (pings answered on the way)."""
        while True:
            first, length = self.take(2)
            length &= 0x7F
            if length >= 126:
                length = int.from_bytes(self.take(2 if length == 126 else 8), "big")
            text = self.take(length).decode()
            if first & 0x0F != 1:
                continue
            if text == "2":
                self.sock.sendall(frame("3"))
                continue
            return text

    def ack(self, number):
        """The answer to event `number`."""
        while number not in self.acks:
            text = self.read()
            found = re.match(r"43(\d+)", text)
            if found:
                self.acks[int(found[1])] = json.loads(text[found.end() :])[0]
        return self.acks.pop(number)

    def close(self):
        self.sock.close()


def frame(text):
    """A client's (masked) text frame."""
    data, mask = text.encode(), os.urandom(4)
    length = bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return b"\x81" + length + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def event(number, name, payload):
    return frame(f"42{number}" + json.dumps([name, payload]))


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_frames_sent_together_or_in_pieces_are_all_read(server_factory, tmp_path, tls):
    context = None
    env = {"SOCKET_PING_INTERVAL": 90}  # no ping (nor its pong) wakes a stalled reader before the reads time out
    if tls:
        cert, key = self_signed_certificate(tmp_path)
        env.update(SSL_CERTFILE=cert, SSL_KEYFILE=key)
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
    node = server_factory(**env)
    api = Api(node.url, verify=node.verify)
    user = register(api)
    room = api.post("/api/rooms", user.token, json={"name": f"pieces-{tls}"}).json()["id"]
    client = BareWebSocket(node.url, user.token, context)
    try:
        # Three frames in one write (over TLS, one record: read at once, the last two wait in TLS's buffer, not
        # the kernel's, for a reader that looks there before it parks).
        client.sock.sendall(
            event(1, "join", {"room": room})
            + event(2, "message", {"room": room, "messageBody": "one", "clientId": "together-1"})
            + event(3, "message", {"room": room, "messageBody": "two", "clientId": "together-2"})
        )
        assert client.ack(1)["ok"] is True
        assert [client.ack(n)["message"]["messageBody"] for n in (2, 3)] == ["one", "two"]
        # One frame in three writes: its header, half its payload, the rest.
        whole = event(4, "message", {"room": room, "messageBody": "in pieces", "clientId": "pieces-1"})
        for piece in (whole[:2], whole[2:20], whole[20:]):
            client.sock.sendall(piece)
            time.sleep(0.3)
        assert client.ack(4)["message"]["messageBody"] == "in pieces"
    finally:
        client.close()


@pytest.mark.parametrize("ending", ["41", "close"])
def test_events_written_just_before_a_disconnect_are_all_handled(node, db, ending):
    """A client that sends and leaves in the same write (the namespace's `41`, or its connection closed): each of
    its events was read before the disconnect, so each is handled, though its ack has nowhere to go."""
    api = Api(node.url)
    user = register(api)
    room = api.post("/api/rooms", user.token, json={"name": f"leaving-{ending}"}).json()["id"]
    client = BareWebSocket(node.url, user.token)
    client.sock.sendall(event(1, "join", {"room": room}))
    assert client.ack(1)["ok"] is True
    sent = [f"{ending}-{n}" for n in range(100)]
    body = b"".join(
        event(n, "message", {"room": room, "messageBody": "bye", "clientId": c}) for n, c in enumerate(sent, 2)
    )
    client.sock.sendall(body + (frame("41") if ending == "41" else b""))
    client.close()
    deadline = time.monotonic() + 10
    while (stored := db.messages.count_documents({"client_id": {"$in": sent}})) < len(sent):
        assert time.monotonic() < deadline, f"{stored} of {len(sent)} events sent before the disconnect were handled"
        time.sleep(0.1)
    assert "Traceback" not in node.log()


def test_a_join_written_with_the_disconnect_ends_quietly(node, db):
    """The join's handler runs, the disconnect takes the socket meanwhile: its ack has nowhere to go, and what failed
    for want of the socket is no server error (it was logged with a traceback)."""
    api = Api(node.url)
    user = register(api)
    room = api.post("/api/rooms", user.token, json={"name": "join-and-go"}).json()["id"]
    mark = LogMark(node)
    for _ in range(5):
        client = BareWebSocket(node.url, user.token)
        client.sock.sendall(event(1, "join", {"room": room}) + frame("41"))
        client.close()
    deadline = time.monotonic() + 10
    while (logged := node.log()[mark.offset :]).count("socket join ") < 5:
        assert time.monotonic() < deadline, logged
        time.sleep(0.1)
    assert "Traceback" not in logged and "outcome=internal_error" not in logged, logged


def test_an_event_written_with_the_namespaces_leave_is_answered_unauthorized(node, db):
    """The connection stays open after its `41`, so the join's ack reaches it: what failed was the socket's room or
    presence, gone with it, which is the answer any event from a connection not signed in gets, not a server error."""
    api = Api(node.url)
    user = register(api)
    room = api.post("/api/rooms", user.token, json={"name": "join-and-leave"}).json()["id"]
    acks = []
    for _ in range(5):
        client = BareWebSocket(node.url, user.token)
        try:
            client.sock.sendall(event(1, "join", {"room": room}) + frame("41"))
            acks.append(client.ack(1))
        finally:
            client.close()
    assert all(ack["ok"] or ack["error"]["code"] == "unauthorized" for ack in acks), acks
    assert any(not ack["ok"] for ack in acks), "every join ended before its socket left: nothing was checked"


def descriptors(server):
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def wait_for_descriptors(server, count, timeout=30):
    deadline = time.monotonic() + timeout
    while descriptors(server) > count:
        assert time.monotonic() < deadline, f"{descriptors(server) - count} descriptors left open"
        time.sleep(0.2)


def test_connections_that_end_leave_no_descriptor_open(server_factory):
    """Closed by the client with a closing frame or a reset, by a client library when the server disconnects it (a
    logout), by the server for a packet too large, then for pongs that never came: each connection's descriptor is
    closed, by the socket that read it (the HTTP server no longer does). The first ones are counted before any ping
    is due, so that the ping timeout cannot close them instead."""
    node = server_factory(
        SOCKET_PING_INTERVAL=15, SOCKET_PING_TIMEOUT=3, SOCKET_MAX_BUFFER=1000, MAX_SOCKETS_PER_USER=40
    )
    with Room(node, 2) as room:
        staying, leaving = room.users
        room.connect(staying, node.url)  # the server's own connections (database, pools) are open before counting
        before = descriptors(node)
        silent = [BareWebSocket(node.url, staying.token) for _ in range(5)]  # answers no ping from now on
        closed = [room.raw(staying, node.url) for _ in range(10)]
        reset = [room.raw(staying, node.url) for _ in range(10)]
        too_large = [BareWebSocket(node.url, staying.token) for _ in range(5)]
        logged_out = [room.connect(leaving, node.url) for _ in range(5)]
        assert descriptors(node) >= before + 35
        for client in closed:
            client.close()  # a closing frame
        for client in reset:
            client.reset()  # gone without a word
        for client in too_large:
            client.sock.sendall(event(1, "message", {"room": room.id, "messageBody": "x" * 2000}))
        assert Api(node.url).post("/api/auth/logout", leaving.token).status_code == 204
        for client in logged_out:
            assert client.wait_for_disconnect(timeout=10)
        try:
            wait_for_descriptors(node, before + len(silent), timeout=10)  # the first ping is due 15 s after connecting
            wait_for_descriptors(node, before, timeout=60)
        finally:
            for client in silent + too_large:
                client.close()


def test_open_websockets_count_in_max_connections_until_they_close(server_factory):
    node = server_factory(MAX_CONNECTIONS=3)
    api = Api(node.url)
    user = register(api)
    api.http.close()  # its keep-alive connection would hold a place
    sockets = [BareWebSocket(node.url, user.token) for _ in range(3)]
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):  # accepted by the kernel, not served: no place is free
            requests.get(node.url + "/api/health", timeout=3)
        sockets.pop().close()
        assert requests.get(node.url + "/api/health", timeout=30).status_code == 200
    finally:
        for client in sockets:
            client.close()


def test_sessions_closed_for_a_packet_a_client_may_not_send_hold_no_place(server_factory):
    """engine.io closes a polling session whose POST holds a packet only the server sends (a ping, `2`); its close
    waited, inside that POST's request, for a poll that never came: each such request held a place in
    MAX_CONNECTIONS for good, and three anonymous ones took them all."""
    node = server_factory(MAX_CONNECTIONS=3)
    polling = node.url + "/socket.io/?EIO=4&transport=polling"
    for _ in range(3):
        with requests.Session() as http:
            sid = json.loads(http.get(polling, timeout=10).text[1:])["sid"]
            with contextlib.suppress(requests.exceptions.ReadTimeout):  # held: the health check below tells
                assert http.post(f"{polling}&sid={sid}", data="2", timeout=2).status_code == 400
    assert requests.get(node.url + "/api/health", timeout=10).status_code == 200


def test_a_client_that_never_answers_the_servers_closing_frame_is_shut_down(server_factory):
    """The server closes an anonymous connection (and a logged-out one, a late pong...) with a closing frame; a
    client that neither answers it nor closes its end does not keep the connection, nor its place in
    MAX_CONNECTIONS, past SOCKET_PING_TIMEOUT."""
    node = server_factory(AUTH_TIMEOUT_SECONDS=1, SOCKET_PING_INTERVAL=60, SOCKET_PING_TIMEOUT=3)
    time.sleep(0.5)  # the start-up's health check's connection closed
    before = descriptors(node)
    deaf = []
    for _ in range(3):
        sock, _ = websocket_handshake(node.url)
        deaf.append(sock)  # reads nothing more and never authenticates: closed by the server after a second
    try:
        for sock in deaf:
            received = b""
            while b"\x88" not in received:  # the server's closing frame, which this client leaves unanswered
                received += sock.recv(4096)
        wait_for_descriptors(node, before, timeout=20)  # the first ping would be due only after 60 s
    finally:
        for sock in deaf:
            sock.close()


def test_a_client_that_stops_writing_gets_the_servers_closing_frame_before_the_end(node):
    """A client's end of the stream (a half-close) ends the session: the server writes what is queued, then its
    closing frame, before it closes the connection."""
    user = register(Api(node.url))
    client = BareWebSocket(node.url, user.token)
    try:
        client.sock.shutdown(socket.SHUT_WR)
        received = client.buffer
        while data := client.sock.recv(4096):
            received += data
        assert b"\x88" in received, received
    finally:
        client.close()


def test_an_upgrade_that_sends_no_packet_fails_and_leaves_the_polling_session_working(node):
    user = register(Api(node.url))
    http = requests.Session()
    polling = node.url + "/socket.io/?EIO=4&transport=polling"
    sid = json.loads(http.get(polling, timeout=10).text[1:])["sid"]
    http.post(f"{polling}&sid={sid}", data="40" + json.dumps({"token": user.token}), timeout=10)
    assert http.get(f"{polling}&sid={sid}", timeout=10).text.startswith("40")
    mark = LogMark(node)
    upgrade, _ = websocket_handshake(node.url, sid)
    upgrade.sendall(frame("hello"))  # not the probe: not a packet at all
    while upgrade.recv(4096):  # the server ends the upgrade's connection
        pass
    upgrade.close()
    assert http.get(f"{polling}&sid={sid}", timeout=30).status_code == 200  # the polling session goes on
    assert "Traceback" not in node.log()[mark.offset :]


def test_sigterm_waits_for_the_websockets_it_told_to_go(server_factory):
    """A WebSocket is a request in flight for the drain: told to go, it gets its disconnect, and the process waits for
    it to close (within SHUTDOWN_TIMEOUT), as it waits for an HTTP request."""
    node = server_factory(SHUTDOWN_TIMEOUT=20)
    client = BareWebSocket(node.url, register(Api(node.url)).token)
    try:
        node.proc.send_signal(signal.SIGTERM)
        assert client.read().startswith("41")  # the namespace's disconnect: go, and reconnect elsewhere
        time.sleep(1)
        assert node.proc.poll() is None, "the process left a WebSocket it told to go"
    finally:
        client.close()
    assert node.proc.wait(15) == 0


def test_a_reader_of_a_flood_lets_the_other_greenlets_run_every_read_turn():
    """A WebSocket whose client wrote thousands of packets at once (always readable): its reader takes them all in,
    in order, and lets the other greenlets run every READ_TURN packets, not once it has read the last (another
    user's events waited seconds behind a flood). In a process of its own: eventlet stays out of the test process."""
    code = """
import warnings; warnings.simplefilter("ignore")
import eventlet
from engineio import packet
from utils.transport import sessions

class Flooded(sessions.LeanSocket):  # a reader alone: packets always waiting, no engine.io socket behind it
    closed, count = False, 5 * sessions.READ_TURN
    websocket = type("Ws", (), {"socket": type("Tls", (), {"pending": lambda self: 1})()})()
    server = type("Server", (), {"sleep": staticmethod(eventlet.sleep)})()  # engine.io's, under eventlet

    def __init__(self):
        self.sent, self.received, self.seen_by_other = 0, [], None

    def next_packet(self):
        self.sent += 1
        return packet.Packet(packet.MESSAGE, data=str(self.sent)).encode() if self.sent <= self.count else None

    def receive(self, pkt):
        self.received.append(pkt.data)

    def end(self):
        pass

reader = Flooded()
other = eventlet.spawn(lambda: setattr(reader, "seen_by_other", len(reader.received)))
reader.read_packets()
other.wait()
print(reader.received == [str(n) for n in range(1, reader.count + 1)], reader.seen_by_other, sessions.READ_TURN)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    in_order, seen_by_other, turn = result.stdout.split()
    assert in_order == "True", result.stderr
    assert int(seen_by_other) == int(turn) - 1, "the other greenlet ran only once the last packet was read"


def test_an_open_websocket_keeps_no_packet_queue_once_its_writer_emptied_it():
    """An idle WebSocket holds no packet queue (1.6 KiB a connection): a put makes one and starts a writer, which
    writes what is queued, in order, and lets the queue go as it ends; a close still waits for its packets. In a
    process of its own: eventlet stays out of the test process."""
    code = """
import warnings; warnings.simplefilter("ignore")
import eventlet; eventlet.monkey_patch()
import engineio, socketio
from engineio import packet
from tests.test_websocket_batching import FakeWebSocket
from utils.transport import frames, sessions

class Ws(FakeWebSocket):  # eventlet's WebSocket as the writer sees it, its writes recorded
    websocket_closed = False

server = socketio.Server(async_mode="eventlet")
server.eio._async = frames.batched_driver(server.eio._async)
sessions.install(server)
socket = server.eio.sockets["s1"] = engineio.socket.Socket(server.eio, "s1")
server.eio.handlers["connect"]("s1", {})  # made lean, as engine.io's connect event does
print(socket._queue is not None)  # engine.io's, until the WebSocket opens
socket.websocket = frames.BatchedWebSocket(Ws())
socket.open_queue = True  # as _websocket_handler opens it
socket.queue.on_put = socket.start_writer
for turn in ("a", "b"):
    socket.send(packet.Packet(packet.MESSAGE, turn + "1"))
    socket.send(packet.Packet(packet.MESSAGE, turn + "2"))
    eventlet.sleep(0.1)
    print(socket._queue is None, socket.writer is None)
socket.close(wait=True)  # the closing packet and the close, after what is queued
print(socket.websocket.ws.writes)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == [
        "True",
        "True True",
        "True True",
        "[b'[4a1][4a2]', b'[4b1][4b2]', b'[1]', 'closed']",
    ], result.stderr


def test_a_detached_connection_keeps_what_events_read_of_its_environ_and_shares_its_strings():
    """The environ an upgraded connection keeps drops the handshake's own keys and eventlet's hold on the request;
    what requests and handlers read stays, its strings shared with every other connection's equal ones."""
    from utils.transport import sessions

    def upgrade(port):
        return {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "".join(["/socket.io", "/"]),  # made at run time, as each request's are
            "QUERY_STRING": f"EIO=4&transport=websocket&token={'t' * 3}",
            "SERVER_NAME": "127.0.0.1",
            "REMOTE_PORT": str(port),
            "RAW_PATH_INFO": "/socket.io/",
            "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
            "HTTP_UPGRADE": "websocket",
            "HTTP_USER_AGENT": "".join(["node", "-ws"]),
            "headers_raw": (("Upgrade", "websocket"),),
            "eventlet.input": object(),
            "flask.app": object(),
        }

    class Ws:
        def __init__(self, environ):
            self.environ = environ

        def skip_closing_frame(self):
            pass

    protocol = type("Protocol", (), {"conn_state": [None, None, None]})()
    kept = []
    for port in (50001, 50002):
        environ = upgrade(port)
        sessions.detach(Ws(environ), protocol, None)
        kept.append(environ)
    first, second = kept
    assert set(first) == {
        "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "HTTP_USER_AGENT", "flask.app", "wsgi.input"
    }  # fmt: skip
    assert first["wsgi.input"] is sessions.NO_BODY
    assert first["QUERY_STRING"].endswith("token=ttt") and first["PATH_INFO"] == "/socket.io/"
    assert all(first[key] is second[key] for key in ("PATH_INFO", "QUERY_STRING", "HTTP_USER_AGENT")), "one copy"


def test_a_websocket_connected_with_its_token_in_the_url_is_authenticated_after_the_upgrade(server):
    """The Socket.IO connect of a WebSocket comes after its upgrade, from the environ the connection kept: a token
    in the URL still authenticates it, and its events are answered."""
    api = Api(server.url)
    user = register(api)
    url = server.url.replace("http", "ws", 1) + f"/socket.io/?EIO=4&transport=websocket&token={user.token}"
    ws = websocket.create_connection(url, timeout=30, header=["User-Agent: bench-client"])
    try:
        assert ws.recv().startswith("0")
        ws.send("40")
        assert ws.recv().startswith('40{"sid"')
        ws.send("421" + json.dumps(["join", {}]))
        ack = ws.recv()
        while not ack.startswith("431"):
            ack = ws.recv()
        assert json.loads(ack[3:])[0]["ok"] is True
    finally:
        ws.close()


def test_a_websocket_handshake_of_the_old_draft_protocol_gets_a_plain_400(node):
    """A handshake with no `Sec-WebSocket-Version` (the draft protocol before RFC 6455) is refused before any upgrade,
    with nothing logged as an error; the server goes on serving."""
    user = register(Api(node.url))
    mark = LogMark(node)
    host, port = node.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(
            f"GET /socket.io/?EIO=4&transport=websocket&token={user.token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: {node.url}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := raw.recv(4096)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    log = node.log()[mark.offset :]
    assert "Traceback" not in log and " ERROR " not in log, log
    assert requests.get(node.url + "/api/health", timeout=30).status_code == 200
