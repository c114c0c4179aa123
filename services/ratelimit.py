"""Per-user limits, one budget per action over REST and sockets together: `<ACTION>_RATE_LIMIT`
(MESSAGE: `POST /api/send` and the `message` event; TYPING; EDIT: message edits, deletes and pins;
ROOM_CREATE; READ: history pages and `sync`; JOIN: `join`, `left` and opening a DM; REACTION:
reactions over REST and `react`). The counters live in Flask-Limiter's storage, so with REDIS_URL
set every process counts against the same budget. While that storage fails (Redis down or hung),
each process counts in its own memory and tries the storage again after RETRY_SECONDS: a send
never waits on Redis more than once a RETRY_SECONDS, and limits still hold, per process."""

import time

from flask import current_app
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from model.user import User
from utils import metrics
from utils.errors import RateLimited
from utils.extensions import limiter
from utils.outage import Outage

outage = Outage("rate-limit storage", "per-user limits are counted by each process until it is back")
RETRY_SECONDS = 5
_local = FixedWindowRateLimiter(MemoryStorage())
_retry_at = 0.0


def check_rate(user: User, action: str) -> None:
    """Count one `action` ("message", "read", ...) for this user; raise RateLimited when over its limit."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    setting = config[f"{action.upper()}_RATE_LIMIT"]
    item, key = parse(setting), str(user.id)
    try:
        allowed, reset_at = _hit(_storage(), item, action, key)
    except Exception as error:  # storage errors come from redis-py or limits: count here meanwhile
        global _retry_at
        _retry_at = time.monotonic() + RETRY_SECONDS
        outage.failed(error)
        allowed, reset_at = _hit(_local, item, action, key)
    if not allowed:
        metrics.refused(action)
        raise RateLimited(reset_at - time.time(), f"at most {setting} {action} events")


def _storage():
    if time.monotonic() < _retry_at:
        return _local
    return limiter.limiter


def _hit(strategy, item, action, key):
    allowed = strategy.hit(item, action, key)
    if strategy is limiter.limiter:
        outage.recovered()
    return allowed, 0 if allowed else strategy.get_window_stats(item, action, key)[0]
