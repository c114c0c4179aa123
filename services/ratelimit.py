"""The per-user message limit, shared by `POST /api/send` and the `message` event."""

import time

from flask import current_app
from limits import parse

from utils.errors import RateLimited
from utils.extensions import limiter


def check_message_rate(user):
    """Count one message for this user; raise RateLimited when over MESSAGE_RATE_LIMIT."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    item = parse(config["MESSAGE_RATE_LIMIT"])
    if not limiter.limiter.hit(item, "message", str(user.id)):
        reset_at, _ = limiter.limiter.get_window_stats(item, "message", str(user.id))
        raise RateLimited(reset_at - time.time(), f"at most {config['MESSAGE_RATE_LIMIT']} messages")
