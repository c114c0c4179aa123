"""Health: 200 with the database up, 503 naming it when it goes down; unexpected errors stay 500."""

import pytest

from model import embedded
from tests.support import Api


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


def test_unexpected_errors_are_500_without_internals_and_logged_with_the_request_id(fragile):
    api = Api(fragile.url)
    token = api.post("/api/auth/register", json={"username": "victim", "password": "password-123"}).json()
    fragile.stop_db()
    response = api.get("/api/users/me", token["accessToken"], headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "Traceback" in fragile.log() and "[boom-1]" in fragile.log()
