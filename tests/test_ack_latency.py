"""A `message` ack on loopback takes milliseconds: the server sets TCP_NODELAY, so the ack that
follows a broadcast is not held ~40 ms by Nagle's algorithm waiting for the client's delayed ACK."""

import socket
import statistics
import time


def test_message_ack_round_trip_is_a_few_milliseconds(joined_pair):
    sender, _listener = joined_pair().sockets
    timings = []
    for i in range(40):
        started = time.perf_counter()
        ack = sender.call("message", {"messageBody": f"ping {i}"})
        timings.append((time.perf_counter() - started) * 1000)
        assert ack["ok"] is True
    median, worst = statistics.median(timings), max(timings)
    print(f"\nmessage ack round trip over websocket: median {median:.2f} ms, max {worst:.2f} ms")
    # Nagle plus delayed ACK would put every round trip at or above ~40 ms.
    assert median < 25, timings


def _handshake_extensions(url):
    """Offer permessage-deflate in a raw WebSocket handshake; return the server's answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        )
        head = sock.recv(4096).decode("latin-1").split("\r\n\r\n")[0]
    assert head.startswith("HTTP/1.1 101"), head
    return [line for line in head.split("\r\n") if line.lower().startswith("sec-websocket-extensions")]


def test_broadcast_frames_are_not_compressed_per_recipient_unless_asked(server, server_factory):
    assert _handshake_extensions(server.url) == []
    compressing = server_factory(WEBSOCKET_COMPRESSION="true")
    assert "permessage-deflate" in _handshake_extensions(compressing.url)[0]
