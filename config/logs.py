"""Logging: LOG_LEVEL, LOG_FORMAT=json|text, every line tagged with the request id."""

import logging
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

QUIET = ("pymongo", "engineio", "socketio", "urllib3", "redis", "limits")


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record logged while a request is handled."""

    def filter(self, record):
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level, fmt):
    """Send logs to stderr as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG these log whole commands and packets: documents, message bodies, tokens.
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
