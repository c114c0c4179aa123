"""A `message` ack on loopback is not held by Nagle's algorithm: the server's listener sets TCP_NODELAY and the
sockets it accepts inherit it, so the ack that follows a broadcast goes out at once instead of ~40 ms later, when
the client's delayed ACK arrives. Checked on the sockets themselves, not by timing a round trip."""

import socket
from types import SimpleNamespace

from server import listen


def test_accepted_sockets_send_small_packets_at_once():
    listener = listen(SimpleNamespace(config={"HOST": "127.0.0.1", "PORT": 0}))
    with listener, socket.create_connection(listener.getsockname()[:2]) as client:
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert not client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), "a socket's default, to tell them apart"


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
