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
