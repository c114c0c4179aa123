"""`endpoint(...)`: a controller's input and output schemas, applied to the request and recorded
for the OpenAPI document, so the spec is built from what the code does."""

from dataclasses import dataclass
from functools import wraps

from flask import request

from utils.http import json_body
from utils.schemas import load


@dataclass
class Operation:
    summary: str
    body: object
    query: object
    response: object
    status: int
    statuses: tuple
    errors: tuple


def endpoint(*, body=None, query=None, response=None, status=200, also=(), errors=()):
    """Load `query` from the query string and `body` from the JSON body (passed as keyword
    arguments), dump the view's result with `response`; a view may return (result, status).
    `also` lists other success statuses, `errors` the error statuses beyond the usual ones."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if query is not None:
                kwargs["query"] = load(query, request.args.to_dict())
            if body is not None:
                kwargs["body"] = load(body, json_body())
            result = view(*args, **kwargs)
            result, code = result if isinstance(result, tuple) else (result, status)
            return (response.dump(result) if response is not None else ""), code

        summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
        wrapper.operation = Operation(summary, body, query, response, status, (status, *also), tuple(errors))
        return wrapper

    return decorate
