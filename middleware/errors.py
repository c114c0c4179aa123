"""The one error handler: every failure leaves as `{"error": {code, message, details?}}`."""

import logging
import time

from flask import jsonify, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from utils import metrics
from utils.errors import BY_STATUS, AppError, InternalError, RateLimited
from utils.extensions import limiter
from utils.outage import log_failure

log = logging.getLogger(__name__)


def render(error):
    """Return the response for an AppError."""
    response = jsonify(error.to_dict())
    response.status_code = error.http_status
    response.headers.update(error.headers)
    return response


def register_error_handlers(app):
    """Route AppError, HTTP errors and anything unexpected through `render`."""

    @app.errorhandler(AppError)
    def app_error(error):
        return render(error)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error):
        current = limiter.current_limit
        retry_after = current.reset_at - time.time() if current else 1
        metrics.refused((request.endpoint or "unknown").rsplit(".", 1)[-1])  # the view: login, register
        return render(RateLimited(retry_after, f"at most {error.description}"))

    @app.errorhandler(HTTPException)
    def http_error(error):
        cls = BY_STATUS.get(error.code)
        if cls is None:
            return render(AppError(error.description)) if error.code >= 500 else _generic(error)
        return render(cls())

    @app.errorhandler(Exception)
    def unexpected(error):
        log_failure(log, "unhandled error")
        return render(InternalError())


def _generic(error):
    generic = AppError(error.description)
    generic.code, generic.http_status = error.name.lower().replace(" ", "_"), error.code
    return render(generic)
