"""Health: 200 with the database up, 503 naming it when it goes down; unexpected errors stay 500, an outage is
logged once.
Liveness and readiness for orchestrators: not ready while a dependency is down or while draining."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from pymongo.errors import AutoReconnect, DuplicateKeyError, ExecutionTimeout

from config import load_config
from model import embedded
from tests.support import ROOT, TEST_SECRET, Api, RedisServer
from tests.test_sockets import _refused
from utils import outage
from utils.outage import log_failure


def test_health_ok(api):
    response = api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "db": "ok", "queue": "off"}


@pytest.fixture
def fragile(server_factory, tmp_path):
    """A server on a database of its own, with `stop_db()` to take that database away."""
    proc, uri = embedded.start_daemon(":memory:", log_path=str(tmp_path / "db.log"))
    server = server_factory(uri=uri, DB_TIMEOUT_MS=500)
    server.stop_db = lambda: embedded.stop_daemon(proc)
    yield server
    embedded.stop_daemon(proc)


def test_health_degraded_when_the_database_is_down(fragile):
    api = Api(fragile.url)
    assert api.get("/api/health").status_code == 200
    fragile.stop_db()
    response = api.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "db": "down", "queue": "off"}


def test_a_database_outage_is_500_without_internals_and_logged_once_with_the_request_id(fragile):
    """Each request that meets the outage is a 500 in the contract's shape; the outage is logged once, in the first
    one's words and with its request id, not a traceback a request (the same one each time)."""
    api = Api(fragile.url)
    token = api.post("/api/auth/register", json={"username": "victim", "password": "password-123"}).json()
    fragile.stop_db()
    for request_id in ("boom-1", "boom-2"):
        response = api.get("/api/users/me", token["accessToken"], headers={"X-Request-ID": request_id})
        assert response.status_code == 500
        assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    warnings = [line for line in fragile.log().splitlines() if "database unreachable" in line]
    assert len(warnings) == 1 and "[boom-1]" in warnings[0], warnings
    assert "[boom-2] GET /api/users/me 500" in fragile.log()
    # A socket connecting meanwhile is refused in the contract's shape (its connection was dropped, and logged).
    refused = _refused(fragile.url, auth={"token": token["accessToken"]})
    assert refused["data"]["error"]["code"] == "internal_error", refused
    assert "Traceback" not in fragile.log()


def test_live_and_ready_need_no_token(api):
    live, ready = api.get("/api/health/live"), api.get("/api/health/ready")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "db": "ok", "queue": "off"})


def test_not_ready_while_the_database_is_down_yet_live(fragile):
    api = Api(fragile.url)
    assert api.get("/api/health/ready").status_code == 200
    fragile.stop_db()
    ready = api.get("/api/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"status": "degraded", "db": "down", "queue": "off"})
    assert api.get("/api/health/live").status_code == 200


def test_not_ready_while_redis_is_down(server_factory, tmp_path):
    redis = RedisServer(tmp_path)
    server = server_factory(REDIS_URL=redis.start(), SOCKETIO_CHANNEL="chat-ready")
    api = Api(server.url)
    try:
        assert api.get("/api/health/ready").json() == {"status": "ok", "db": "ok", "queue": "ok"}
        redis.stop()
        ready = api.get("/api/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"status": "degraded", "db": "ok", "queue": "down"})
        assert api.get("/api/health/live").status_code == 200
    finally:
        server.kill()  # with its queue down it checks the shared database every few seconds


def _send_part_of_a_registration():
    """A registration whose body is half sent: a request in flight until `finish` sends the rest."""
    body = json.dumps({"username": "in-flight", "password": "password-123"}).encode()
    head = f"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()

    def send(port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head + body[:10])
        return sock

    def finish(sock):
        with sock:
            sock.sendall(body[10:])
            return sock.recv(4096).decode()

    return send, finish


def test_sigterm_turns_ready_to_503_while_requests_in_flight_finish(server_factory):
    node = server_factory(DRAIN_GRACE_SECONDS=2, SHUTDOWN_TIMEOUT=8)
    api = Api(node.url)
    assert api.get("/api/health/ready").status_code == 200
    send, finish = _send_part_of_a_registration()
    in_flight = send(node.port)
    time.sleep(0.3)  # the server is now reading that body
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    ready = api.get("/api/health/ready")
    while ready.status_code == 200 and time.monotonic() - started < 1:  # the signal is handled
        ready = api.get("/api/health/ready")
    assert (ready.status_code, ready.json()["status"]) == (503, "draining")
    assert api.get("/api/health/live").status_code == 200, "alive while draining"
    node.proc.send_signal(signal.SIGTERM)  # a second one (honcho and a process group both send one) changes nothing
    refused = False
    while not refused and time.monotonic() - started < 6:  # the grace ends: no new connection is taken
        try:
            api.get("/api/health/ready")
            time.sleep(0.1)
        except requests.ConnectionError:
            refused = True
    assert refused and time.monotonic() - started >= 1.9
    time.sleep(0.6)  # past the moment a second drain would stop the process
    assert finish(in_flight).startswith("HTTP/1.1 201"), "the request in flight finished"
    assert node.proc.wait(10) == 0 and time.monotonic() - started < 8
    assert "SIGTERM: draining" in node.log()


def test_drain_grace_must_be_shorter_than_the_shutdown_timeout(mongo_uri):
    env = {**os.environ, "MONGODB_URI": mongo_uri, "JWT_SECRET_KEY": TEST_SECRET}
    env.update(DRAIN_GRACE_SECONDS="10", SHUTDOWN_TIMEOUT="10")
    result = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == "DRAIN_GRACE_SECONDS (10) must be shorter than SHUTDOWN_TIMEOUT (10)\n"


@pytest.mark.parametrize("timeout, grace", [("10", 5), ("4", 2)])
def test_production_drains_with_a_grace_within_the_shutdown_timeout(monkeypatch, timeout, grace):
    env = {"JWT_SECRET_KEY": TEST_SECRET, "MONGODB_URI": "mongodb://db/chat", "SHUTDOWN_TIMEOUT": timeout}
    for name, value in {**env, "CORS_ORIGINS": "https://chat.example", "DRAIN_GRACE_SECONDS": ""}.items():
        monkeypatch.setenv(name, value)
    assert load_config("production")["DRAIN_GRACE_SECONDS"] == grace
    assert load_config("development")["DRAIN_GRACE_SECONDS"] == 0


def test_an_outage_is_logged_once_until_it_ends_and_any_other_failure_with_its_traceback(caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("chat.test")
    errors = (AutoReconnect("gone"), AutoReconnect("still gone"), ExecutionTimeout("past the deadline", 50))
    for error in (*errors, DuplicateKeyError("a bug", 11000)):
        try:
            raise error
        except Exception:
            log_failure(log, "request failed")
    outage.database.recovered()
    lines = [(record.getMessage(), record.exc_info is not None) for record in caplog.records]
    assert lines == [
        ("database unreachable (gone): what needs it fails with internal_error until it is back", False),
        ("request failed", True),  # the duplicate key alone: the deadline passed is part of the outage
        ("database reachable again", False),
    ]
