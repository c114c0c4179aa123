"""engine.io sessions with no greenlet or timer of their own while idle (utils/transport/sessions.py): one pinger
per process keeps answering clients connected, on WebSocket and long-polling alike, and a client that stops
answering pings, or stops reading altogether, is disconnected and shut down.

No timing is asserted: pings come every 2 s here and a pong may be 5 s late; the waits are generous bounds.
"""

import re
import time

import pytest
import websocket

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
