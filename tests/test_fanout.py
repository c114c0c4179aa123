"""Room broadcasts written straight to idle WebSockets (utils/transport/fanout.py): every socket gets every
message once, in the one order its process broadcast them, whatever its transport, its reading speed or
its neighbours' disconnections; locally and from another process over Redis.

No timing is asserted: the waits are generous bounds for a busy machine. Each server logs, at DEBUG, how
each broadcast went out (`broadcast to N sockets: B buffered, Q queued`, then `wrote S sockets' frames: P in
part`); the tests read it to know that the path they mean to exercise was taken.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import websocket

from tests.support import ROOT, Api, SocketClient, register

BROADCAST = re.compile(r"broadcast to (\d+) sockets: (\d+) buffered, (\d+) queued")
PARTIAL = re.compile(r"wrote \d+ sockets' frames: (\d+) in part")


@pytest.fixture(scope="module")
def node(server_factory):
    # Pings far apart: on a busy machine a reader that stops reading for long must not be dropped for its
    # late pong (tests/test_sessions.py shows that it is) before the kernel's buffers to it are full.
    return server_factory(LOG_LEVEL="DEBUG", SOCKET_PING_INTERVAL=300, SOCKET_PING_TIMEOUT=300)


class LogMark:
    """What a server logged since this mark: the broadcasts, (recipients, buffered, queued) each, and how many
    sockets' writes the kernel took only part of."""

    def __init__(self, server):
        self.server = server
        self.offset = len(server.log())

    def broadcasts(self):
        return [tuple(map(int, m.groups())) for m in BROADCAST.finditer(self.server.log()[self.offset :])]

    def partial_writes(self):
        return sum(int(m[1]) for m in PARTIAL.finditer(self.server.log()[self.offset :]))


def ordered(client):
    """python-socketio's client hands each incoming packet to a new thread, which may record them out of
    order; here they are recorded by the thread that read them, in the order they came."""
    trigger = client.sio.eio._trigger_event

    def in_order(event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    client.sio.eio._trigger_event = in_order
    return client


class Room:
    """A fresh public room on `server` and users to fill it; leaving `with Room(...) as room:` closes every client
    it connected."""

    def __init__(self, server, users):
        api = Api(server.url)
        self.users = [register(api) for _ in range(users)]
        self.id = api.post("/api/rooms", self.users[0].token, json={"name": f"fan-{uuid.uuid4().hex[:8]}"}).json()["id"]
        self.clients = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def connect(self, user, url, **kwargs):
        client = ordered(SocketClient(url, user.token, **kwargs)).connect()
        self.clients.append(client)
        ack = client.call("join", {"room": self.id}, timeout=30)
        assert ack["ok"] is True, ack
        return client

    def raw(self, user, url):
        """A RawClient of `user` that joined the room."""
        client = RawClient(url, user.token)
        self.clients.append(client)
        assert client.call("join", {"room": self.id})["ok"] is True
        return client

    def close(self):
        for client in self.clients:
            client.close()


def send_all(senders, room, count, tag, body="x", start=0):
    """Each sender, in a thread of its own, sends `count` messages (numbered from `start`), each once the
    previous one is acked; return their clientIds."""
    errors = []

    def run(k, client):
        try:
            for i in range(start, start + count):
                ack = client.call(
                    "message", {"room": room, "messageBody": f"{k}:{i} {body}", "clientId": f"{tag}-{k}-{i}"}
                )
                assert ack["ok"] is True, ack
        except Exception as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    return [f"{tag}-{k}-{i}" for k in range(len(senders)) for i in range(start, start + count)]


def emit_all(sender, room, count, tag, body=None, timeout=60):
    """Emit `count` messages (`tag`-0, `tag`-1, ...) without waiting for acks, so that they are stored and broadcast
    many at a time; return once every one is acked."""
    acks = threading.Semaphore(0)
    for i in range(count):
        message = {"room": room, "messageBody": body or str(i), "clientId": f"{tag}-{i}"}
        sender.sio.emit("message", message, callback=lambda ack: acks.release())
    for _ in range(count):
        assert acks.acquire(timeout=timeout)


def client_ids(client, tag, count, timeout=60):
    """The clientIds of this run's messages, in the order the client got them, once it has `count`."""
    mine = lambda m: m["clientId"].startswith(tag + "-")  # noqa: E731
    client.wait_for_count("message", count, mine, timeout=timeout)
    return [m["clientId"] for m in client.received("message") if mine(m)]


def stored_client_ids(server, room, count, timeout=60):
    """The clientIds of a room's messages in the room's order, read back from its history once it holds `count`."""
    api, deadline = Api(server.url), time.monotonic() + timeout
    while True:
        stored, cursor = [], ""
        while cursor is not None:
            page = api.get(f"/api/messages?room={room.id}&limit=100{cursor}", room.users[0].token).json()
            stored += [message["clientId"] for message in page["messages"]]
            cursor = page["nextCursor"] and f"&before={page['nextCursor']}"
        if len(stored) >= count or time.monotonic() > deadline:
            api.http.close()
            return stored[::-1]
        time.sleep(0.2)


def assert_one_order(sequences, expected):
    """Every sequence holds each expected message once; all are the same order; each sender's in its own order."""
    for sequence in sequences:
        assert sorted(sequence) == sorted(expected), "lost or duplicated"
        assert sequence == sequences[0], "two sockets of one process got its broadcasts in different orders"
    for sender in {cid.rsplit("-", 1)[0] for cid in expected}:
        numbers = [int(cid.rsplit("-", 1)[1]) for cid in sequences[0] if cid.rsplit("-", 1)[0] == sender]
        assert numbers == sorted(numbers), f"{sender}'s messages out of order"


class RawClient:
    """A Socket.IO client on a bare WebSocket (websocket-client) that reads only when told to, with a
    receive buffer as small as the kernel allows: when it stops reading, the server's writes to it soon
    find the kernel buffers full."""

    def __init__(self, url, token, receive_buffer=4096):
        self.ws = websocket.create_connection(
            url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)],
            timeout=30,
        )
        self.events = []
        self.acks = {}
        self.ids = iter(range(1, 1_000_000))
        assert self.ws.recv().startswith("0")  # engine.io open
        self.ws.send("40" + json.dumps({"token": token}))
        while not self.read_one().startswith("40"):
            pass

    def read_one(self):
        """Read one packet: answer pings, record events and acks; return the packet."""
        data = self.ws.recv()
        if data == "2":
            self.ws.send("3")
        elif data.startswith("42"):
            self.events.append(json.loads(data[2:]))
        elif data.startswith("43"):
            number = re.match(r"43(\d+)", data)
            self.acks[int(number[1])] = json.loads(data[number.end() :])[0]
        return data

    def call(self, event, payload):
        number = next(self.ids)
        self.ws.send(f"42{number}" + json.dumps([event, payload]))
        while number not in self.acks:
            self.read_one()
        return self.acks.pop(number)

    def messages(self, tag, count):
        """Read until `count` of this run's messages have come; their clientIds, in order."""
        while True:
            found = [
                data["clientId"] for name, data in self.events if name == "message" and data["clientId"].startswith(tag)
            ]
            if len(found) >= count:
                return found
            self.read_one()

    def close(self):
        self.ws.close()

    def reset(self):
        """Drop the connection without a goodbye: the server's next writes fail."""
        self.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.ws.sock.close()


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_many_senders_and_receivers_get_every_message_once_in_the_rooms_one_order(node):
    with Room(node, 24) as room:
        clients = [room.connect(user, node.url) for user in room.users]
        mark = LogMark(node)
        expected = send_all(clients[:4], room.id, 50, "many")
        assert_one_order([client_ids(c, "many", len(expected)) for c in clients], expected)
        broadcasts = [b for b in mark.broadcasts() if b[0] == 24]
        assert len(broadcasts) >= 200 and sum(b[1] for b in broadcasts) > 0  # frames were buffered and written


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_messages_sent_without_waiting_for_acks_reach_every_socket_in_the_order_they_were_stored(server_factory, mode):
    """Broadcasts leave in the order the room's messages were stored, whichever sender's handler runs first once its
    batch is stored: a client that asks for what came after the last message it got (`sync` after a reconnect) must
    not skip the ones broadcast after it but stored before. Three senders write 200 frames each at once, stored in
    batches. When each sender's handler broadcast its own message, the threading server broadcast them out of order
    in every run; on eventlet, a waiting sender's greenlet ran after the next batch's writer now and then (a polling
    reader's test in tests/test_reliability.py failed so once in the whole suite)."""
    node = server_factory(script="server.py" if mode == "eventlet" else "bench/serve_other.py", ASYNC_MODE=mode)
    with Room(node, 4) as room:
        senders = [room.raw(user, node.url) for user in room.users[:3]]
        reader = room.connect(room.users[3], node.url)
        for i in range(200):
            for k, sender in enumerate(senders):
                message = {"room": room.id, "messageBody": str(i), "clientId": f"piped-{k}-{i}"}
                sender.ws.send(f"42{1000 + i}" + json.dumps(["message", message]))
        stored = stored_client_ids(node, room, 600)
        assert client_ids(reader, "piped", 600) == stored
        for sender in senders:
            assert sender.messages("piped", 600) == stored


def test_a_reader_that_stops_reading_stalls_no_one_and_then_gets_everything_in_order(node):
    with Room(node, 4) as room:
        sender, *readers = [room.connect(user, node.url) for user in room.users[:3]]
        slow = room.raw(room.users[3], node.url)
        mark, before, sent = LogMark(node), rss_kib(node.proc.pid), 0
        # Bursts of 4 kB frames (stored many at a time) until the kernel's buffers (the server's send buffer grows up
        # to 4 MB) take only part of a write to the slow reader; then as many again, which wait for it on the server.
        while not mark.partial_writes():
            assert sent < 4000, "the kernel never refused a write to the slow reader"
            emit_all(sender, room.id, 100, f"slow-{sent}", body="y" * 3900)
            sent += 100
        emit_all(sender, room.id, sent, f"slow-{sent}", body="y" * 3900)
        sent *= 2
        order = client_ids(sender, "slow", sent)
        for reader in readers:  # all of it reached the others while the slow one read nothing
            assert client_ids(reader, "slow", sent) == order
        assert len(set(order)) == sent, "lost or duplicated"
        grown = rss_kib(node.proc.pid) - before
        # What waits for the slow reader: references to the shared frames (4 kB each) and the rest of one write;
        # generous room for everything else.
        assert grown < 64 * 1024 + 4 * sent, f"the server grew by {grown} KiB for {sent} messages"
        assert slow.messages("slow", sent) == order
        assert [name for name, _ in slow.events].count("message") == sent


def test_polling_and_upgrading_clients_mixed_with_websockets_get_the_same_order(node):
    with Room(node, 11) as room:
        transports = [["websocket"]] * 5 + [["polling"]] * 3 + [["polling", "websocket"]] * 3
        clients = [room.connect(user, node.url, transports=t) for user, t in zip(room.users, transports, strict=True)]
        mark = LogMark(node)
        expected = send_all([clients[0], clients[5], clients[8]], room.id, 30, "mixed")
        assert_one_order([client_ids(c, "mixed", len(expected)) for c in clients], expected)
        broadcasts = [b for b in mark.broadcasts() if b[0] == 11]
        assert sum(b[2] for b in broadcasts) >= 3 * len(expected)  # polling clients: queued, every time


def test_a_polling_client_gets_a_burst_larger_than_its_library_takes_in_one_response(node):
    """python-engineio's client drops its connection when one poll's response holds more than 16 packets
    (`Payload.max_decode_packets`): the server answers a poll with at most that many, the rest in the next."""
    with Room(node, 2) as room:
        sender = room.connect(room.users[0], node.url)
        reader = room.connect(room.users[1], node.url, transports=["polling"])
        emit_all(sender, room.id, 80, "poll", timeout=30)
        assert client_ids(reader, "poll", 80) == [f"poll-{i}" for i in range(80)]
        assert not reader.gone.is_set()


def test_a_websocket_closed_while_its_client_reads_nothing_is_shut_down_after_the_ping_timeout(server_factory):
    """A connection the server closes (its user logged out, and it did not join again) has SOCKET_PING_TIMEOUT to
    take what is queued and answer the closing frame, even when its client stopped reading, so that the server's
    writer waits on full kernel buffers, and keeps sending pongs unasked."""
    # Long enough for the sender's pongs on a busy machine: they wait behind its acks (each with its 4 KB message),
    # and behind its own burst of messages.
    ping_timeout = 10
    node = server_factory(AUTH_TIMEOUT_SECONDS=1, SOCKET_PING_INTERVAL=1, SOCKET_PING_TIMEOUT=ping_timeout)
    with Room(node, 2) as room:
        stuck = room.raw(room.users[1], node.url)  # reads nothing from here on
        sender = room.connect(room.users[0], node.url)
        assert sender.call("left", {"room": room.id})["ok"] is True  # a member that sends, not receiving the room
        # 6 MB: more than the kernel's buffers take. In bursts of 100: the sender's pong to a ping sent meanwhile
        # reaches the server behind what it sent before. At 1500 in one burst, a server busy with the whole suite
        # read that late: 11 s in (the ping interval and timeout) the sender's events met no session, and 95 of them
        # never arrived, so their acks never came.
        for burst in range(0, 1500, 100):
            emit_all(sender, room.id, 100, f"stuck-{burst}", body="y" * 3900)
        assert Api(node.url).post("/api/auth/logout", room.users[1].token).status_code == 204
        closed_at = time.monotonic() + 1 + ping_timeout  # AUTH_TIMEOUT_SECONDS, then SOCKET_PING_TIMEOUT
        with pytest.raises((OSError, websocket.WebSocketException)):
            while time.monotonic() < closed_at + 10:
                stuck.ws.send("3")
                time.sleep(0.5)
        assert time.monotonic() < closed_at + 10


def test_sockets_that_disconnect_during_broadcasts_leave_the_others_whole(node):
    with Room(node, 14) as room:
        clients = [room.connect(user, node.url) for user in room.users[:8]]
        raws = [room.raw(user, node.url) for user in room.users[8:]]
        leaving, staying = clients[4:], clients[:4]

        def disconnect_midway():
            staying[1].wait_for_count("message", 20, lambda m: m["clientId"].startswith("gone-"), timeout=60)
            for raw in raws:  # reset: the server's writes fail (ECONNRESET, EPIPE) in the middle of a broadcast
                raw.reset()
            for client in leaving:
                client.close()

        quitter = threading.Thread(target=disconnect_midway)
        quitter.start()
        expected = send_all(staying[:2], room.id, 60, "gone")
        quitter.join(60)
        assert_one_order([client_ids(c, "gone", len(expected)) for c in staying], expected)
        latecomer = room.connect(register(Api(node.url)), node.url)  # the server still serves, and this room
        sent = staying[0].call("message", {"room": room.id, "messageBody": "after", "clientId": "gone-after"})
        assert latecomer.wait_for("message", lambda m: m["clientId"] == "gone-after") == sent["message"]
        assert "Traceback" not in node.log()


def test_broadcasts_from_another_process_take_the_same_path(server_factory, redis_url):
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"fan-{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "DEBUG"}
    a_node, b_node = server_factory(**env), server_factory(**env)
    with Room(a_node, 12) as room:
        on_a = [room.connect(user, a_node.url) for user in room.users[:4]]
        on_b = [room.connect(user, b_node.url) for user in room.users[4:]]
        mark = LogMark(b_node)
        expected = send_all(on_a[:3], room.id, 30, "redis")  # every broadcast reaches B over Redis only
        assert_one_order([client_ids(c, "redis", len(expected)) for c in on_a], expected)
        assert_one_order([client_ids(c, "redis", len(expected)) for c in on_b], expected)
        broadcasts = [b for b in mark.broadcasts() if b[0] == len(on_b)]
        assert len(broadcasts) >= len(expected) and sum(b[1] for b in broadcasts) > 0


def test_the_pinned_versions_have_what_fanout_relies_on_and_a_moved_line_refuses_to_start():
    # In a process of its own: eventlet stays out of the test process.
    code = """
import warnings; warnings.simplefilter("ignore")
import eventlet; eventlet.monkey_patch()
import socketio
from utils import transport
server = socketio.Server(async_mode="eventlet", client_manager=transport.client_manager({"REDIS_URL": ""}))
transport.check_internals(server)
print("pinned: ok")
try:
    transport.check_internals(server, behaviours=(("engineio.socket", "Socket", "send", "self.queue.put(pkt, False)"),))
except transport.InternalsMoved as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == [
        "pinned: ok",
        "utils/transport patches internals that changed: "
        "engineio.socket.Socket.send no longer does `self.queue.put(pkt, False)`",
    ], result.stderr


def test_an_eventlet_whose_rfc6455_websocket_reads_its_message_queue_refuses_to_start(tmp_path):
    """sessions drops the old protocol's queue of parsed messages (`_msgs`) from each RFC 6455 WebSocket: a version
    of eventlet whose RFC 6455 WebSocket reads it is refused at start-up."""
    script = tmp_path / "moved.py"  # a file: inspect reads the class's source
    script.write_text(
        """
import warnings; warnings.simplefilter("ignore")
import eventlet; eventlet.monkey_patch()
import eventlet.websocket
import socketio
from utils import transport

class RFC6455WebSocket(eventlet.websocket.RFC6455WebSocket):
    def wait(self):
        return self._msgs.popleft() if self._msgs else super().wait()

eventlet.websocket.RFC6455WebSocket = RFC6455WebSocket
server = socketio.Server(async_mode="eventlet", client_manager=transport.client_manager({"REDIS_URL": ""}))
try:
    transport.check_internals(server)
except transport.InternalsMoved as error:
    print(error)
"""
    )
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert "RFC6455WebSocket reads or no longer makes _msgs" in result.stdout, result.stderr
