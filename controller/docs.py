"""The OpenAPI document and its rendered page."""

from flask import current_app

from utils.openapi import build_spec


def openapi():
    """The OpenAPI 3.1 document of this API."""
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return spec
