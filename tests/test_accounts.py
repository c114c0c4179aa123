"""Accounts over REST: register, login, refresh rotation, logout revocation, me."""

import time
import warnings

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from tests.support import TEST_SECRET, assert_error, register


def test_register_returns_user_and_tokens_without_secrets(api):
    response = api.post(
        "/api/auth/register", json={"username": "Alice", "password": "password-123", "displayName": "Al"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "accessToken", "refreshToken"}
    assert set(body["user"]) == {"id", "username", "displayName", "role", "createdAt"}
    assert body["user"]["username"] == "Alice" and body["user"]["displayName"] == "Al"
    assert body["user"]["role"] == "user"
    assert body["user"]["createdAt"].endswith("Z") and len(body["user"]["createdAt"]) == 24
    assert "password" not in response.text and "argon2" not in response.text


def test_new_user_is_a_member_of_general(api, make_user):
    user = make_user()
    rooms = api.get("/api/rooms", user.token).json()["rooms"]
    general = [room for room in rooms if room["name"] == "general"]
    assert general and general[0]["myRole"] == "member" and general[0]["private"] is False


def test_username_taken_is_a_conflict_whatever_the_case(api, make_user):
    make_user("bob")
    assert_error(api.post("/api/auth/register", json={"username": "BOB", "password": "password-123"}), 409, "conflict")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "ab", "password": "password-123"}, "username"),
        ({"username": "a" * 33, "password": "password-123"}, "username"),
        ({"username": "bad name!", "password": "password-123"}, "username"),
        ({"username": "carol", "password": "short"}, "password"),
        ({"username": "carol", "password": "x" * 129}, "password"),
        ({"username": {"$gt": ""}, "password": "password-123"}, "username"),
        ({"password": "password-123"}, "username"),
        ({"username": "carol", "password": "password-123", "role": "admin"}, "role"),
        ({"username": "carol\n", "password": "password-123"}, "username"),
        ({"username": "carol", "password": "password-123", "displayName": "car\u200bol"}, "displayName"),
        ({"username": "carol", "password": "password-123", "displayName": "\u202eevil"}, "displayName"),
        ({"username": "carol", "password": "password-123", "displayName": "two\nlines"}, "displayName"),
        ({"username": "carol", "password": "password-123", "displayName": "a\u2028b"}, "displayName"),
    ],
)
def test_register_validation(api, body, field):
    error = assert_error(api.post("/api/auth/register", json=body), 400, "validation_error")
    assert field in error["details"]


def test_login_and_me(api, make_user):
    user = make_user("dave")
    response = api.post("/api/auth/login", json={"username": "DAVE", "password": user.password})
    assert response.status_code == 200
    token = response.json()["accessToken"]
    me = api.get("/api/users/me", token).json()
    assert me["id"] == user.id and me["username"] == "dave"


def test_unknown_user_and_wrong_password_answer_alike(api, make_user):
    make_user("erin")
    wrong = assert_error(
        api.post("/api/auth/login", json={"username": "erin", "password": "nope-nope"}), 401, "unauthorized"
    )
    unknown = assert_error(
        api.post("/api/auth/login", json={"username": "nobody", "password": "nope-nope"}), 401, "unauthorized"
    )
    assert wrong == unknown


def test_refresh_rotates_and_the_old_refresh_token_stops_working(api, make_user):
    user = make_user()
    response = api.post("/api/auth/refresh", user.refresh)
    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"accessToken", "refreshToken"}
    assert api.get("/api/users/me", pair["accessToken"]).status_code == 200
    assert api.post("/api/auth/refresh", pair["refreshToken"]).status_code == 200
    # Reusing a rotated token is a theft signal: it fails, and so does its whole family (test_reliability).
    assert_error(api.post("/api/auth/refresh", user.refresh), 401, "unauthorized")


def test_token_types_are_not_interchangeable(api, make_user):
    user = make_user()
    assert_error(api.get("/api/users/me", user.refresh), 401, "unauthorized")
    assert_error(api.post("/api/auth/refresh", user.token), 401, "unauthorized")


def test_logout_revokes_the_access_token_and_its_refresh_token(api, make_user):
    user = make_user()
    assert api.post("/api/auth/logout", user.token).status_code == 204
    assert_error(api.get("/api/users/me", user.token), 401, "unauthorized")
    assert_error(api.post("/api/auth/refresh", user.refresh), 401, "unauthorized")
    again = api.post("/api/auth/login", json={"username": user.username, "password": user.password})
    assert api.get("/api/users/me", again.json()["accessToken"]).status_code == 200


def _forge(claims, key=TEST_SECRET, algorithm="HS256"):
    return jwt.encode(claims, key, algorithm=algorithm)


def test_bad_tokens_are_unauthorized(api, make_user):
    user = make_user()
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    expired = _forge({**claims, "exp": int(time.time()) - 10})
    foreign = _forge(claims, key="another-secret-0123456789abcdef0123456789")
    unsigned = jwt.encode(claims, None, algorithm="none")
    with warnings.catch_warnings():  # the test secret is shorter than HS512 wants: the server refuses HS512 first
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        other_algorithm = _forge(claims, algorithm="HS512")
    not_yet = _forge({**claims, "nbf": int(time.time()) + 600})
    no_identity = _forge({key: value for key, value in claims.items() if key != "sub"})
    bad = (expired, foreign, unsigned, other_algorithm, not_yet, no_identity, "garbage", user.token[:-3] + "abc")
    for token in bad:
        assert_error(api.get("/api/users/me", token), 401, "unauthorized")
    assert_error(api.get("/api/users/me"), 401, "unauthorized")
    assert_error(api.get("/api/users/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


def test_no_request_can_become_admin(api, make_user):
    user = make_user()
    response = api.patch("/api/users/me", user.token, json={"role": "admin"})
    assert_error(response, 405, "method_not_allowed")
    assert api.get("/api/users/me", user.token).json()["role"] == "user"


def test_register_is_open_but_the_rest_needs_a_token(api):
    for method, path in [
        ("GET", "/api/users/me"),
        ("GET", "/api/rooms"),
        ("GET", "/api/messages"),
        ("POST", "/api/send"),
    ]:
        assert_error(api.request(method, path), 401, "unauthorized")
    assert api.get("/api/health").status_code == 200
    assert register(api).token


def test_a_token_verified_once_is_still_refused_once_it_expires(api, make_user):
    """The server keeps the claims of the tokens it verified (a user's tabs and calls send one again): its expiry is
    still checked at every use."""
    user = make_user()
    claims = jwt.decode(user.token, TEST_SECRET, algorithms=["HS256"])
    short = _forge({**claims, "exp": int(time.time()) + 2})
    assert api.get("/api/users/me", short).status_code == 200
    assert api.get("/api/users/me", short).status_code == 200  # from what the first verified
    time.sleep(max(0.0, claims_exp(short) - time.time()) + 0.2)
    response = api.get("/api/users/me", short)
    assert_error(response, 401, "unauthorized")
    assert response.json()["error"]["message"] == "token expired"


def claims_exp(token):
    return jwt.decode(token, options={"verify_signature": False})["exp"]


def test_a_token_is_verified_once_under_each_key(in_process, make_user):
    """A token sent again is not verified again; under another key it is, and refused."""
    from flask import current_app

    from services import tokens
    from utils.errors import Unauthorized

    in_process()
    current_app.config["JWT_SECRET_KEY"] = TEST_SECRET  # the live server's, which signed the user's token
    user = make_user()
    tokens._verified.cache_clear()
    first = tokens.authenticate(user.token)[1]
    again = tokens.authenticate(user.token)[1]
    assert first == again and first is not again, "a copy each time: a caller may not change what is kept"
    assert tokens._verified.cache_info().hits == 1 and tokens._verified.cache_info().misses == 1
    current_app.config["JWT_SECRET_KEY"] = "another-secret-0123456789abcdef0123456789"
    with pytest.raises(Unauthorized):
        tokens.authenticate(user.token)
