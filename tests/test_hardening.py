"""Hardening through the live server: hostile input, log injection, slow clients, password hashing."""

import pytest

from tests.support import Api, assert_error

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
