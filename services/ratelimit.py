"""The per-user message limit, shared by `POST /api/send` and the `message` event."""

import time

from flask import current_app
from limits import parse

from utils.errors import RateLimited
from utils.extensions import limiter
from utils.outage import Outage

outage = Outage("rate-limit storage", "message limits are not enforced until it is back")


def check_message_rate(user):
    """Count one message for this user; raise RateLimited when over MESSAGE_RATE_LIMIT."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    item = parse(config["MESSAGE_RATE_LIMIT"])
    try:
        allowed = limiter.limiter.hit(item, "message", str(user.id))
        reset_at, _ = (0, 0) if allowed else limiter.limiter.get_window_stats(item, "message", str(user.id))
    except Exception as error:  # storage errors come from redis-py or limits; fail open
        outage.failed(error)
        return
    outage.recovered()
    if not allowed:
        raise RateLimited(reset_at - time.time(), f"at most {config['MESSAGE_RATE_LIMIT']} messages")
