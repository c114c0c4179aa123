"""The Flask app itself (server.ChatApp)."""

import mongoengine
from flask import request

from server import create_app
from utils.extensions import socketio
from utils.transport.packets import TextFirstPacket


def test_a_socket_io_connect_context_is_not_routed_and_an_api_request_is(mongo_uri, db):
    """Flask-SocketIO builds a connect's (and a disconnect's) request context from the connection's environ
    (engine.io's path)."""
    app = create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
    try:
        with app.test_request_context("/socket.io/", query_string={"EIO": "4", "transport": "websocket"}):
            assert request.url_rule is None and request.routing_exception is None
        with app.test_request_context("/api/rooms"):
            assert request.url_rule.rule == "/api/rooms" and request.routing_exception is None
        with app.test_request_context("/nowhere"):
            assert request.routing_exception is not None  # still a 404 where no route serves
    finally:
        mongoengine.disconnect()  # later tests in this process connect on their own terms


def test_the_socket_io_server_makes_its_packets_text_first(mongo_uri, db):
    """Its packets are told binary by their encoding, not by a walk of their data (tests/test_websocket_batching.py)."""
    create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
    try:
        assert socketio.server.packet_class is TextFirstPacket
    finally:
        mongoengine.disconnect()


def test_a_client_event_runs_in_an_app_context_not_a_request_context(mongo_uri, db):
    """Flask-SocketIO's request context for each event cost ten times the app context; a client event gets the
    app context and its sid, and no request is set up or torn down for it."""
    app = create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
    torn_down = []
    app.teardown_request(torn_down.append)
    try:
        server = socketio.server
        sid = server.manager.connect("eio-1", "/")
        server.environ["eio-1"] = {"flask.app": app, "PATH_INFO": "/socket.io/", "QUERY_STRING": "EIO=4"}
        ack = server._trigger_event("typing", "/", sid, {"room": "general", "typing": True})
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"  # the handler ran, knew the sid's socket
        assert torn_down == []
    finally:
        mongoengine.disconnect()
