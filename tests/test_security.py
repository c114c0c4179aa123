"""Hardening: limits on sockets and across processes, origins, proxies, headers, TLS, tokens, logs, Sentry."""

import os
import subprocess
import sys
import uuid

import pytest
import requests
import socketio
from bson import ObjectId

from tests.support import ROOT, TEST_SECRET, Api, SocketClient, assert_error, register, self_signed_certificate


def test_socket_message_and_typing_limits_answer_in_the_ack_and_keep_the_connection(server_factory, make_user):
    node = server_factory(RATE_LIMITS_ENABLED="true", MESSAGE_RATE_LIMIT="3/minute", TYPING_RATE_LIMIT="2/minute")
    user = register(Api(node.url))
    client = SocketClient(node.url, user.token).connect()
    try:
        client.call("join", {})
        acks = [client.call("message", {"messageBody": f"m{i}"}) for i in range(4)]
        assert [ack["ok"] for ack in acks] == [True, True, True, False]
        assert acks[-1]["error"]["code"] == "rate_limited" and int(acks[-1]["error"]["details"]["retryAfter"][0]) >= 1
        typing = [client.call("typing", {"typing": True}) for _ in range(3)]
        assert [ack["ok"] for ack in typing] == [True, True, False] and typing[-1]["error"]["code"] == "rate_limited"
        assert client.sio.connected and client.call("left", {})["ok"] is True
    finally:
        client.close()


def test_message_limit_is_shared_by_rest_and_sockets_across_processes(server_factory, redis_url):
    env = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"limits-{uuid.uuid4().hex[:6]}", "RATE_LIMITS_ENABLED": "true"}
    a_node = server_factory(**env, MESSAGE_RATE_LIMIT="3/minute")
    b_node = server_factory(**env, MESSAGE_RATE_LIMIT="3/minute")
    user = register(Api(a_node.url))
    assert Api(a_node.url).post("/api/send", user.token, json={"messageBody": "1"}).status_code == 201
    client = SocketClient(b_node.url, user.token).connect()
    try:
        assert client.call("message", {"messageBody": "2"})["ok"] is True
    finally:
        client.close()
    assert Api(b_node.url).post("/api/send", user.token, json={"messageBody": "3"}).status_code == 201
    assert_error(Api(a_node.url).post("/api/send", user.token, json={"messageBody": "4"}), 429, "rate_limited")


def test_handshakes_from_other_origins_are_refused(server_factory, make_user):
    node = server_factory(CORS_ORIGINS="http://good.test")
    user = register(Api(node.url))
    polling = requests.get(node.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://evil.test"})
    assert polling.status_code == 400
    evil = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        evil.connect(
            node.url, auth={"token": user.token}, headers={"Origin": "http://evil.test"}, transports=["websocket"]
        )
    good = SocketClient(node.url, user.token, transports=["polling"], headers={"Origin": "http://good.test"}).connect()
    assert good.call("join", {})["ok"] is True
    good.close()
    preflight = {"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}
    assert "Access-Control-Allow-Origin" not in requests.options(node.url + "/api/send", headers=preflight).headers
    preflight["Origin"] = "http://good.test"
    allowed = requests.options(node.url + "/api/send", headers=preflight).headers
    assert allowed["Access-Control-Allow-Origin"] == "http://good.test"


def test_the_servers_own_origin_is_always_accepted_at_the_handshake(server_factory, make_user):
    node = server_factory(CORS_ORIGINS="http://good.test")
    user = register(Api(node.url))
    # websocket-client sends the server's own origin by itself, as a browser on the demo page does.
    for options in ({"transports": ["websocket"]}, {"transports": ["polling"], "headers": {"Origin": node.url}}):
        own = SocketClient(node.url, user.token, **options).connect()
        assert own.call("join", {})["ok"] is True, "the demo page, served by this server, can connect"
        own.close()
    look_alike = node.url.replace("127.0.0.1", "127.0.0.1.evil.test")
    polling = requests.get(node.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": look_alike})
    assert polling.status_code == 400
    behind = server_factory(CORS_ORIGINS="http://good.test", TRUSTED_PROXY_HOPS=1)
    proxied = {"Origin": "https://chat.test", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.test"}
    assert requests.get(behind.url + "/socket.io/?EIO=4&transport=polling", headers=proxied).status_code == 200
    direct = requests.get(node.url + "/socket.io/?EIO=4&transport=polling", headers=proxied)
    assert direct.status_code == 400, "forwarded headers count only from a trusted proxy"


def _login(url, username, address):
    body = {"username": username, "password": "wrong-password"}
    return requests.post(url + "/api/auth/login", json=body, headers={"X-Forwarded-For": address}).status_code


def test_limits_key_on_the_address_the_trusted_proxy_saw(server_factory):
    env = {"RATE_LIMITS_ENABLED": "true", "LOGIN_RATE_LIMIT": "2/minute", "LOGIN_ADDRESS_RATE_LIMIT": "2/minute"}
    behind = server_factory(**env, TRUSTED_PROXY_HOPS=1).url
    assert [_login(behind, f"u{i}", "1.1.1.1") for i in range(3)] == [401, 401, 429]
    assert _login(behind, "u9", "2.2.2.2") == 401, "another client address has its own budget"
    assert _login(behind, "u8", "6.6.6.6, 1.1.1.1") == 429, "a forged left-hand address does not help"
    direct = server_factory(**env).url
    statuses = [_login(direct, f"v{i}", f"3.3.3.{i}") for i in range(3)]
    assert statuses == [401, 401, 429], "without trusted proxies X-Forwarded-For is ignored"


def test_login_limit_per_username_counts_each_address_apart(server_factory):
    behind = server_factory(RATE_LIMITS_ENABLED="true", LOGIN_RATE_LIMIT="2/minute", TRUSTED_PROXY_HOPS=1).url
    assert [_login(behind, "target", f"4.4.4.{i}") for i in range(3)] == [401, 401, 401]
    assert [_login(behind, "target", "5.5.5.5") for i in range(3)] == [401, 401, 429]


def test_security_headers_and_hsts_behind_https(server_factory, api):
    response = api.get("/api/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers
    assert api.get("/api/nowhere").headers["X-Content-Type-Options"] == "nosniff"
    behind = server_factory(TRUSTED_PROXY_HOPS=1).url
    secure = requests.get(behind + "/api/health", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_direct_tls_serves_https_and_wss(server_factory, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    node = server_factory(SSL_CERTFILE=cert, SSL_KEYFILE=key)
    assert node.url.startswith("https://")
    health = requests.get(node.url + "/api/health", verify=str(cert))
    assert health.status_code == 200 and health.headers["Strict-Transport-Security"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(node.url + "/api/health")  # not a publicly trusted certificate
    user = register(Api(node.url, verify=str(cert)))
    http = requests.Session()
    http.verify = str(cert)
    client = _connect_wss(node.url, user.token, http)
    try:
        assert client.sio.transport() == "websocket"
        client.call("join", {})
        ack = client.call("message", {"messageBody": "over wss"})
        assert client.wait_for("message") == ack["message"]
    finally:
        client.close()


def _connect_wss(url, token, http):
    """Connect over wss, allowing one retry: eventlet's own TLS server occasionally stalls a
    websocket handshake under load (seen once in ~400 connections here; reported upstream),
    which is why the README sends production TLS to the proxy in front."""
    options = {"http_session": http}
    try:
        return SocketClient(url, token, client_options=options).connect()
    except socketio.exceptions.ConnectionError:
        return SocketClient(url, token, client_options=options).connect()


def test_production_refuses_a_short_secret():
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET_KEY", "MONGODB_URI", "CORS_ORIGINS")}
    env.update(APP_ENV="production", JWT_SECRET_KEY="short", MONGODB_URI="mongodb://127.0.0.1:1/x")
    result = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "JWT_SECRET_KEY needs 32 characters" in result.stderr


def test_password_hashes_are_upgraded_at_login_when_parameters_change(server_factory, server, db):
    user = register(Api(server.url))
    before = db.users.find_one({"_id": ObjectId(user.id)})["password_hash"]
    assert before.startswith("$argon2id$") and "m=8192" in before
    stronger = server_factory(ARGON2_MEMORY_COST=16384)
    assert Api(stronger.url).post("/api/auth/login", json={"username": user.username, "password": user.password}).ok
    after = db.users.find_one({"_id": ObjectId(user.id)})["password_hash"]
    assert "m=16384" in after and after != before


def test_logs_never_contain_passwords_tokens_or_bodies(server_factory):
    node = server_factory(LOG_LEVEL="DEBUG", RATE_LIMITS_ENABLED="true")
    api = Api(node.url)
    password, secret_body = "hunter2-correct-horse", "the-secret-message-body-42"
    user = register(api, password=password)
    login = api.post("/api/auth/login", json={"username": user.username, "password": password}).json()
    sent = api.post("/api/send", login["accessToken"], json={"messageBody": secret_body}).json()
    api.patch(f"/api/messages/{sent['id']}", login["accessToken"], json={"messageBody": secret_body + "-edited"})
    client = SocketClient(node.url, login["accessToken"]).connect()
    client.call("join", {})
    client.call("message", {"messageBody": secret_body + "-socket"})
    client.close()
    pair = api.post("/api/auth/refresh", login["refreshToken"]).json()
    api.post("/api/auth/logout", pair["accessToken"])
    log = node.log()
    assert "socket message user=" in log and "outcome=ok" in log, "socket events are logged"
    for secret in (password, secret_body, user.token, login["accessToken"], login["refreshToken"], pair["accessToken"]):
        assert secret not in log
    assert "Bearer" not in log and "argon2" not in log


def test_sentry_is_wired_when_a_dsn_is_set(mongo_uri):
    code = (
        "import sentry_sdk, server; server.create_app(); c = sentry_sdk.get_client(); "
        "print(c.is_active(), 'flask' in c.integrations, c.options['send_default_pii'])"
    )
    env = {
        **os.environ,
        "MONGODB_URI": mongo_uri,
        "SENTRY_DSN": "http://public@127.0.0.1:9/1",
        "JWT_SECRET_KEY": TEST_SECRET,
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True", "False"], result.stderr
    env.pop("SENTRY_DSN")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split()[0] == "False"


def test_nosql_operators_never_reach_a_query(api, make_user):
    user = make_user()
    for body in (
        {"username": {"$ne": None}, "password": {"$ne": None}},
        {"username": user.username, "password": {"$gt": ""}},
    ):
        assert_error(api.post("/api/auth/login", json=body), 400, "validation_error")
    assert_error(api.get("/api/messages?room[$ne]=x", user.token), 400, "validation_error")
