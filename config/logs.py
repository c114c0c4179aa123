"""Logging: LOG_LEVEL, LOG_FORMAT=json|text, every line tagged with the request id."""

import logging
import re
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

QUIET = ("pymongo", "engineio", "socketio", "urllib3", "redis", "limits")


# Control characters (CR and LF among them) and the Unicode line and paragraph separators.
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class OneLineFormatter(logging.Formatter):
    """Text lines whose message and fields cannot break the line: a request path or socket field
    carrying CR/LF would otherwise forge log lines. Tracebacks keep their lines."""

    def formatMessage(self, record):
        return _LINE_BREAKERS.sub(
            lambda match: match[0].encode("unicode_escape").decode(), super().formatMessage(record)
        )


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
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG these log whole commands and packets: documents, message bodies, tokens.
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
