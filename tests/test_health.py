"""Health: 200 with the database up, 503 naming it when it goes down."""

from model import embedded
from tests.support import Api


def test_health_ok(api):
    response = api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "db": "ok", "queue": "off"}


def test_health_degraded_when_the_database_is_down(server_factory, tmp_path):
    proc, uri = embedded.start_daemon(":memory:", log_path=str(tmp_path / "db.log"))
    server = server_factory(uri=uri, DB_TIMEOUT_MS=500)
    api = Api(server.url)
    assert api.get("/api/health").status_code == 200
    embedded.stop_daemon(proc)
    response = api.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "db": "down", "queue": "off"}


def test_unexpected_errors_are_500_without_internals_and_logged_with_the_request_id(server_factory, tmp_path):
    proc, uri = embedded.start_daemon(":memory:", log_path=str(tmp_path / "db.log"))
    server = server_factory(uri=uri, DB_TIMEOUT_MS=500)
    api = Api(server.url)
    token = api.post("/api/auth/register", json={"username": "victim", "password": "password-123"}).json()
    embedded.stop_daemon(proc)
    response = api.get("/api/users/me", token["accessToken"], headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "Traceback" in server.log() and "[boom-1]" in server.log()
