"""Docs: the OpenAPI document of these routes and the AsyncAPI document of the Socket.IO events."""

from controller import docs

RULES = [
    ("GET", "/openapi.json", docs.openapi),
    ("GET", "/asyncapi.yaml", docs.asyncapi),
]
