"""Request ids and one log line per request."""

import logging
import re
import time
import uuid

from flask import g, request

log = logging.getLogger("chat.request")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def register_request_logging(app):
    """Give every request an id (echoed as X-Request-ID) and log method, path, status and duration."""

    @app.before_request
    def start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 1),
            },
        )
        return response
