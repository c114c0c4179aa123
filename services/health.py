"""Dependency checks for `GET /api/health`."""

import redis
from flask import current_app

import model


def check_health() -> tuple[bool, dict[str, str]]:
    """Return (healthy, report): the database and, when REDIS_URL is set, the message queue."""
    db = "ok" if model.ping() else "down"
    queue = _queue_state(current_app.config["REDIS_URL"])
    healthy = db == "ok" and queue != "down"
    return healthy, {"status": "ok" if healthy else "degraded", "db": db, "queue": queue}


def _queue_state(url):
    if not url:
        return "off"
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
        return "ok"
    except redis.RedisError:
        return "down"
