"""Every failure has the contract's shape: bad JSON, unknown routes and methods, oversized bodies."""

import pytest

from tests.support import assert_error


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '"a string"', "", "{"])
def test_bodies_that_are_not_json_objects(api, make_user, body):
    user = make_user()
    response = api.post("/api/send", user.token, data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_json")


def test_json_without_a_content_type_is_accepted(api, make_user):
    user = make_user()
    response = api.post("/api/send", user.token, data='{"messageBody": "postman forgot the header"}')
    assert response.status_code == 201


def test_unknown_route_and_wrong_method(api):
    assert_error(api.get("/api/nothing-here"), 404, "not_found")
    assert_error(api.get("/nothing-here"), 404, "not_found")
    assert_error(api.put("/api/auth/login"), 405, "method_not_allowed")


def test_body_over_the_limit_is_413(api, make_user):
    user = make_user()
    body = '{"messageBody": "' + "x" * (70 * 1024) + '"}'
    assert_error(api.post("/api/send", user.token, data=body), 413, "payload_too_large")


@pytest.mark.parametrize(
    "path", ["/api/rooms/not-an-id", "/api/rooms/ffffffffffffffffffffffff", "/api/rooms/%24where/members"]
)
def test_malformed_and_unknown_ids_are_404(api, make_user, path):
    user = make_user()
    assert_error(api.get(path, user.token), 404, "not_found")


def test_malformed_message_ids_are_404(api, make_user):
    user = make_user()
    assert_error(api.patch("/api/messages/nope", user.token, json={"messageBody": "x"}), 404, "not_found")
    assert_error(api.delete("/api/messages/123", user.token), 404, "not_found")


def test_request_id_is_echoed_or_made(api):
    response = api.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    made = api.get("/api/health", headers={"X-Request-ID": "bad id\twith tab"}).headers["X-Request-ID"]
    assert made and made != "bad id\twith tab"


def test_request_is_logged_with_method_path_status_and_id(api, server):
    api.get("/api/rooms", headers={"X-Request-ID": "log-probe-1"})
    assert any("log-probe-1" in line and "GET /api/rooms 401" in line for line in server.log().splitlines())


def test_cors_headers_for_allowed_origins(api):
    response = api.request(
        "OPTIONS", "/api/send", headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"}
    )
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", "http://example.test")
