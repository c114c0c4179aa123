"""The API's documents, and the root page that points to them and to the demo."""

from pathlib import Path

from flask import current_app, send_file

from utils.openapi import build_spec

ASYNCAPI = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


def openapi():
    """The OpenAPI 3.1 document of this API."""
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return spec


def asyncapi():
    """The AsyncAPI 3.0 document of the Socket.IO events."""
    return send_file(ASYNCAPI, mimetype="application/yaml")


def index():
    """`GET /`: where to go from here (`demo` is null when DEMO_UI is off)."""
    return {
        "name": "Chat backend",
        "links": {
            "demo": "/demo" if current_app.config["DEMO_UI"] else None,
            "docs": "/api/docs",
            "openapi": "/api/openapi.json",
            "asyncapi": "/api/asyncapi.yaml",
            "health": "/api/health",
        },
    }
