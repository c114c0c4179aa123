"""Per-user limits, one budget per action over REST and sockets together: `<ACTION>_RATE_LIMIT`
(MESSAGE: `POST /api/send` and the `message` event; TYPING; EDIT: message edits and deletes;
ROOM_CREATE; READ: history pages and `sync`; JOIN: `join` and `left`). The counters live in
Flask-Limiter's storage, so with REDIS_URL set every process counts against the same budget."""

import time

from flask import current_app
from limits import parse

from utils.errors import RateLimited
from utils.extensions import limiter
from utils.outage import Outage

outage = Outage("rate-limit storage", "per-user limits are not enforced until it is back")


def check_rate(user, action):
    """Count one `action` ("message", "read", ...) for this user; raise RateLimited when over its limit."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    setting = config[f"{action.upper()}_RATE_LIMIT"]
    item = parse(setting)
    try:
        allowed = limiter.limiter.hit(item, action, str(user.id))
        reset_at, _ = (0, 0) if allowed else limiter.limiter.get_window_stats(item, action, str(user.id))
    except Exception as error:  # storage errors come from redis-py or limits; fail open
        outage.failed(error)
        return
    outage.recovered()
    if not allowed:
        raise RateLimited(reset_at - time.time(), f"at most {setting} {action} events")
