"""`endpoint(...)`: a controller's input and output schemas, applied to the request and recorded
for the OpenAPI document, so the spec is built from what the code does."""

from dataclasses import dataclass
from functools import wraps

from flask import request

from utils.http import form_body, json_body
from utils.schemas import load


@dataclass
class Operation:
    summary: str
    body: object
    form: object
    query: object
    response: object
    status: int
    statuses: tuple
    errors: tuple
    download: bool


def endpoint(*, body=None, form=None, query=None, response=None, status=200, also=(), errors=(), download=False):
    """Load `query` from the query string, `body` from the JSON body and `form` from a multipart/form-data
    body (`utils.http.form_body`), passed as keyword arguments; dump the view's result with `response`; a
    view may return (result, status). `download`: the view answers with a response of its own (bytes).
    `also` lists other success statuses, `errors` the error statuses beyond the usual ones."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if query is not None:
                kwargs["query"] = load(query, request.args.to_dict())
            if body is not None:
                kwargs["body"] = load(body, json_body())
            if form is not None:
                kwargs["form"] = load(form, form_body())
            result = view(*args, **kwargs)
            if download:
                return result
            result, code = result if isinstance(result, tuple) else (result, status)
            return (response.dump(result) if response is not None else ""), code

        summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
        statuses = (status, *also)
        wrapper.operation = Operation(summary, body, form, query, response, status, statuses, tuple(errors), download)
        return wrapper

    return decorate
