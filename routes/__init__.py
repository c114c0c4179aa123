"""URL map: each module's RULES bind paths to controller functions, nothing else."""

from pathlib import Path

from flask import Blueprint, redirect, request
from flask_swagger_ui import get_swaggerui_blueprint

from controller import docs as docs_controller
from routes import (
    accounts,
    dms,
    docs,
    files,
    health,
    mentions,
    messages,
    metrics,
    pins,
    reactions,
    rooms,
    search,
    users,
)
from services.metrics import on_main_port

MODULES = (accounts, users, rooms, dms, messages, reactions, pins, mentions, files, search, health, docs)
DEMO = Path(__file__).resolve().parent.parent / "demo"
# The demo runs only its own files: no inline script or style, no plugins, no framing, and
# forms that cannot be submitted anywhere (the page sends everything with fetch and Socket.IO).
DEMO_CSP = "; ".join(
    (
        "default-src 'self'",
        "connect-src 'self' ws: wss:",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def register_blueprints(app):
    """Mount one blueprint per module under /api, the rendered API docs at /api/docs, `/` pointing to them,
    and /metrics at the root unless production has no METRICS_TOKEN (then only METRICS_PORT serves it)."""
    app.add_url_rule("/", view_func=docs_controller.index)
    # One OpenAPI tag per module, described by the module's docstring (utils/openapi.py).
    app.extensions["api_tags"] = {}
    for module in MODULES:
        blueprint = _blueprint(module)
        app.extensions["api_tags"][blueprint.name] = module.__doc__.strip()
        app.register_blueprint(blueprint, url_prefix="/api")
    if on_main_port(app.config):
        app.register_blueprint(_blueprint(metrics))
    # Swagger UI's assets come from the flask-swagger-ui package, so the page works offline.
    app.register_blueprint(get_swaggerui_blueprint("/api/docs", "/api/openapi.json"), url_prefix="/api/docs")
    if app.config["DEMO_UI"]:
        demo = Blueprint("demo", __name__, static_folder=str(DEMO), static_url_path="/demo")
        demo.add_url_rule("/demo", view_func=demo_page)
        demo.add_url_rule("/demo/", view_func=demo_page)
        app.register_blueprint(demo)
        # An app-level hook registered before the security headers' runs after them, so this
        # policy replaces their `frame-ancestors 'none'` (which it includes) on the demo only.
        app.after_request(demo_policy)


def _blueprint(module):
    blueprint = Blueprint(module.__name__.rsplit(".", 1)[-1], module.__name__)
    for method, path, view in module.RULES:
        blueprint.add_url_rule(path, view_func=view, methods=[method])
    return blueprint


def demo_page():
    """Send /demo and /demo/ to the demo's page."""
    return redirect("/demo/index.html")


def demo_policy(response):
    """Give every response of the demo blueprint its strict Content-Security-Policy."""
    if request.blueprint == "demo":
        response.headers["Content-Security-Policy"] = DEMO_CSP
    return response
