"""`GET /metrics` in the Prometheus text format, on the server's port or on METRICS_PORT alone."""

from flask import Response, current_app, request

from services import metrics
from utils.errors import Unauthorized

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def scrape():
    """This process's metrics; with METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`."""
    if not metrics.authorized(request.headers.get("Authorization"), current_app.config["METRICS_TOKEN"]):
        raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>", headers=CHALLENGE)
    body, content_type = metrics.exposition(current_app.extensions["metrics"], request.headers.get("Accept"))
    return Response(body, content_type=content_type)


def internal_app(app):
    """The WSGI app of the METRICS_PORT listener: GET /metrics (same token rule) and nothing else."""
    served, token = app.extensions["metrics"], app.config["METRICS_TOKEN"]

    def serve(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics" or environ["REQUEST_METHOD"] != "GET":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: this port serves GET /metrics only\n"]
        if not metrics.authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"), *CHALLENGE.items()])
            return [b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"]
        body, content_type = metrics.exposition(served, environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return serve
