"""Reading request bodies."""

from flask import request
from werkzeug.exceptions import BadRequest

from utils.errors import BadJson


def json_body():
    """Return the request body as a JSON object, or raise BadJson (any Content-Type is accepted)."""
    try:
        data = request.get_json(force=True)
    except (BadRequest, RecursionError):  # the parser recurses once per level of nesting
        raise BadJson("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadJson()
    return data
