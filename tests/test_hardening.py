"""Hardening through the live server: hostile input, log injection, slow clients, password hashing."""

import socket
import threading
import time

import pytest
import requests

from tests.support import Api, assert_error, register, self_signed_certificate

# Deeper than the JSON parser's recursion allows, smaller than MAX_CONTENT_LENGTH.
DEEP = "[" * 30_000 + "]" * 30_000


@pytest.mark.parametrize("body", [DEEP, '{"messageBody": ' + DEEP + "}"], ids=["top", "field"])
def test_deeply_nested_json_is_bad_json(api, make_user, body):
    user = make_user()
    response = api.post("/api/send", user.token, data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_json")


def test_a_deeply_nested_login_body_is_bad_json_while_limits_read_it(server_factory):
    limited = Api(server_factory(RATE_LIMITS_ENABLED="true").url)
    body = '{"username": ' + DEEP + ', "password": "password-123"}'
    response = limited.post("/api/auth/login", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_json")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "gen\u200beral"}, "name"),  # zero-width space: a look-alike of `general`
        ({"name": "\u202etxt.exe"}, "name"),  # right-to-left override
        ({"name": "two\nlines"}, "name"),
        ({"name": "ok", "description": "tab\there"}, "description"),
        ({"name": "ok", "description": "hidden\u2066isolate"}, "description"),
    ],
)
def test_room_names_and_descriptions_refuse_hidden_characters(api, make_user, body, field):
    user = make_user()
    error = assert_error(api.post("/api/rooms", user.token, json=body), 400, "validation_error")
    assert field in error["details"]


def test_descriptions_keep_their_lines_and_names_their_letters(api, make_user):
    user = make_user()
    room = api.post("/api/rooms", user.token, json={"name": "Café 東京", "description": "line one\nline two"})
    assert room.status_code == 201, room.text
    assert room.json()["description"] == "line one\nline two"
    renamed = api.patch(f"/api/rooms/{room.json()['id']}", user.token, json={"name": "caf\u00e9\u200d"})
    assert_error(renamed, 400, "validation_error")


FORGED = "2000-01-01 00:00:00,000 INFO chat.request [forged] GET /api/admin 200"


def test_text_logs_keep_one_request_on_one_line(server, api, make_user, connect):
    user = make_user()
    api.get("/api/nowhere%0D%0A" + FORGED.replace(" ", "%20"), headers={"X-Request-ID": "inject-probe"})
    client = connect(user)
    assert client.call("join", {"room": "nope\n" + FORGED[:40]})["ok"] is False
    client.call("typing", {"room": "x\u2028" + FORGED[:40], "typing": True})
    lines = server.log().splitlines()
    assert not [line for line in lines if line.startswith("2000-01-01")], "a log line was forged"
    probe = [line for line in lines if "inject-probe" in line]
    assert len(probe) == 1 and "/api/nowhere\\r\\n2000-01-01" in probe[0]
    assert any("room=nope\\n2000-01-01" in line for line in lines)
    assert any("room=x\\u2028" in line for line in lines)


def _closed_by_the_server(raw, within):
    """Seconds until the server closes `raw`; fail if it stays open `within` seconds."""
    started = time.monotonic()
    raw.settimeout(within)
    try:
        assert raw.recv(1024) == b""
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {within}s") from None
    return time.monotonic() - started


def test_half_sent_headers_time_out_while_an_idle_websocket_stays(server_factory, make_user, connect):
    node = server_factory(HTTP_TIMEOUT_SECONDS=2)
    idle = connect(make_user(), url=node.url)
    opened = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.port)) as raw:
        raw.sendall(b"GET /api/hea")
        assert 1.5 < _closed_by_the_server(raw, within=8) < 5
    # Idle for 2.5 HTTP timeouts, no ping due (every 25 s): the websocket keeps engine.io's own timeout.
    time.sleep(max(0, opened + 5 - time.monotonic()))
    assert idle.sio.connected and idle.call("join", {})["ok"] is True


def _failed_login(url, cert, forged_address):
    body = {"username": "nobody", "password": "wrong-password"}
    headers = {"X-Forwarded-For": forged_address}
    return requests.post(url + "/api/auth/login", json=body, headers=headers, verify=str(cert), timeout=10).status_code


def test_direct_tls_in_production_trusts_no_forwarded_address_and_says_so(server_factory, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    production = {
        "APP_ENV": "production",
        "CORS_ORIGINS": "https://chat.test",
        "SSL_CERTFILE": cert,
        "SSL_KEYFILE": key,
    }
    limits = {"RATE_LIMITS_ENABLED": "true", "LOGIN_ADDRESS_RATE_LIMIT": "2/minute"}
    node = server_factory(**production, **limits)
    assert [_failed_login(node.url, cert, f"9.9.9.{i}") for i in range(3)] == [401, 401, 429]
    assert "serving TLS directly, so X-Forwarded-* is not trusted (TRUSTED_PROXY_HOPS=0)" in node.log()
    trusting = server_factory(**production, TRUSTED_PROXY_HOPS=1)
    assert "WARNING chat [-] TRUSTED_PROXY_HOPS=1 with SSL_CERTFILE" in trusting.log()


def test_password_hashing_leaves_the_event_loop_serving(server_factory, make_user, connect):
    # Over a second per hash (one lane, 64 MiB, 20 passes): long enough to ask something meanwhile.
    node = server_factory(ARGON2_TIME_COST=20, ARGON2_MEMORY_COST=65536, ARGON2_PARALLELISM=1)
    api = Api(node.url)
    target = register(api)
    other = connect(make_user(), url=node.url)
    login = {}

    def fail_to_log_in():
        body = {"username": target.username, "password": "wrong-password"}
        login["status"] = api.post("/api/auth/login", json=body).status_code
        login["answered"] = time.monotonic()

    guessing = threading.Thread(target=fail_to_log_in)
    guessing.start()
    time.sleep(0.5)  # the login is hashing now
    assert other.call("join", {})["ok"] is True
    acked = time.monotonic()
    guessing.join()
    assert login["status"] == 401
    assert acked < login["answered"], "the ack waited for the password hash"
