"""Dependency checks for `GET /api/health` and readiness; the draining flag set on SIGTERM."""

import redis
from flask import current_app

import model


def check_health() -> tuple[bool, dict[str, str]]:
    """Return (healthy, report): the database and, when REDIS_URL is set, the message queue."""
    db = "ok" if model.ping() else "down"
    queue = _queue_state(current_app.config["REDIS_URL"])
    healthy = db == "ok" and queue != "down"
    return healthy, {"status": "ok" if healthy else "degraded", "db": db, "queue": queue}


def check_ready():
    """Return (ready, report): healthy and not draining; a draining process reports `status: draining`."""
    healthy, report = check_health()
    if current_app.extensions.get("draining"):
        return False, {**report, "status": "draining"}
    return healthy, report


def start_draining(app):
    """From now on `app` answers not ready: a load balancer stops sending it new connections.
    Return False when it was draining already."""
    if app.extensions.get("draining"):
        return False
    app.extensions["draining"] = True
    return True


def _queue_state(url):
    if not url:
        return "off"
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
        return "ok"
    except redis.RedisError:
        return "down"
