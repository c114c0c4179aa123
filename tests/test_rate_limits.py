"""Rate limits from config: login, register, and messages per user (429 `rate_limited` with Retry-After)."""

import pytest

from tests.support import Api, assert_error, register


@pytest.fixture(scope="module")
def limited(server_factory):
    server = server_factory(RATE_LIMITS_ENABLED="true", LOGIN_RATE_LIMIT="3/minute", MESSAGE_RATE_LIMIT="3/minute")
    return Api(server.url)


def test_login_limit(limited, db):
    user = register(limited)
    for _ in range(3):
        limited.post("/api/auth/login", json={"username": user.username, "password": "wrong-password"})
    response = limited.post("/api/auth/login", json={"username": user.username, "password": user.password})
    error = assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1 and error["details"]["retryAfter"]


def test_message_limit_is_per_user(limited, db):
    alice, bob = register(limited), register(limited)
    for i in range(3):
        assert limited.post("/api/send", alice.token, json={"messageBody": f"m{i}"}).status_code == 201
    response = limited.post("/api/send", alice.token, json={"messageBody": "one too many"})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert limited.post("/api/send", bob.token, json={"messageBody": "bob is fine"}).status_code == 201


def test_register_limit(server_factory, db):
    api = Api(server_factory(RATE_LIMITS_ENABLED="true", REGISTER_RATE_LIMIT="2/hour").url)
    statuses = [
        api.post("/api/auth/register", json={"username": f"reg{i}", "password": "password-123"}).status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 429]
