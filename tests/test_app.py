"""The Flask app itself and how it runs Socket.IO's handlers."""

import mongoengine
import pytest
from socketio.exceptions import ConnectionRefusedError

from server import create_app
from utils.extensions import socketio
from utils.transport.packets import TextFirstPacket


def test_the_socket_io_server_makes_its_packets_text_first(mongo_uri, db):
    """Its packets are told binary by their encoding, not by a walk of their data (tests/test_websocket_batching.py)."""
    create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
    try:
        assert socketio.server.packet_class is TextFirstPacket
    finally:
        mongoengine.disconnect()


def test_socket_io_handlers_run_in_an_app_context_not_a_request_context(mongo_uri, db):
    """Flask-SocketIO's request context for each handler cost ten times the app context; connect, disconnect and
    every client event get the app context and their sid (connect also the handshake's environ), and no request
    is set up or torn down for them."""
    app = create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
    torn_down = []
    app.teardown_request(torn_down.append)
    try:
        server = socketio.server
        sid = server.manager.connect("eio-1", "/")
        environ = {"QUERY_STRING": "EIO=4&token=nonsense"}
        server.environ["eio-1"] = environ
        with pytest.raises(ConnectionRefusedError) as refused:
            server._trigger_event("connect", "/", sid, environ, None)
        assert refused.value.error_args["data"]["error"] == {"code": "unauthorized", "message": "invalid token"}
        ack = server._trigger_event("typing", "/", sid, {"room": "general", "typing": True})
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"  # the handler ran, knew the sid's socket
        server._trigger_event("disconnect", "/", sid, server.reason.CLIENT_DISCONNECT)
        assert torn_down == []
    finally:
        mongoengine.disconnect()
