"""The OpenAPI 3.1 document, built from the URL map and each view's `endpoint(...)` declaration."""

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from utils.openapi_examples import ERRORS, OPERATIONS, PATH
from utils.schemas import IdField, IsoDateTime, ObjectIdString, Trimmed
from utils.schemas.errors import ErrorSchema
from utils.schemas.files import UploadedFile

BINARY = {"type": "string", "format": "binary"}

ERROR_TEXT = {
    400: "`validation_error` (schema) or `bad_json` (not a JSON object)",
    401: "`unauthorized`: no, bad, expired or revoked token",
    403: "`forbidden`: the caller's role does not allow it",
    404: "`not_found`: unknown id, or a private room the caller cannot see",
    409: "`conflict`: the name is taken, or a limit is reached (a room's 50 pins)",
    413: "`payload_too_large`: the body is over MAX_CONTENT_LENGTH (an uploaded file: over MAX_UPLOAD_BYTES)",
    416: "`range_not_satisfiable`: the Range starts past the end of the file",
    429: "`rate_limited`: over a limit; see Retry-After",
    500: "`internal_error`",
}


def build_spec(app):
    """Return the OpenAPI document of every /api route as a dict."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="Chat backend",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[marshmallow],
        info={
            "description": "The REST half of the chat API. The Socket.IO events, with their payloads and acks, "
            "are described in AsyncAPI 3.0: [/api/asyncapi.yaml](/api/asyncapi.yaml)."
        },
    )
    marshmallow.map_to_openapi_type(IdField, fields.String)
    marshmallow.map_to_openapi_type(ObjectIdString, fields.String)
    marshmallow.map_to_openapi_type(IsoDateTime, fields.DateTime)
    marshmallow.map_to_openapi_type(UploadedFile, *BINARY.values())
    marshmallow.converter.add_attribute_function(_trimmed_length)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=ErrorSchema)
    used = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        operation = getattr(app.view_functions[rule.endpoint], "operation", None)
        if operation is None:
            continue
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        used.add(rule.endpoint.split(".")[0])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            spec.path(path=path, operations={method.lower(): _operation(rule, view, operation)})
    for name, description in app.extensions.get("api_tags", {}).items():
        if name in used:
            spec.tag({"name": name.capitalize(), "description": description})
    return _with_examples(spec.to_dict())


def _with_examples(document):
    """Put each operation's examples (utils/openapi_examples.py) on its parameters, body and answers."""
    for operations in document["paths"].values():
        for operation in operations.values():
            examples = OPERATIONS.get(operation["operationId"], {})
            for parameter in operation.get("parameters", []):
                source = PATH if parameter["in"] == "path" else examples.get("query", {})
                if parameter["name"] in source:
                    parameter["example"] = source[parameter["name"]]
            if "request" in examples:
                (body,) = operation["requestBody"]["content"].values()
                body["example"] = examples["request"]
            for status, response in operation["responses"].items():
                example = examples.get(status) or ERRORS.get(int(status))
                if "content" in response and example:
                    response["content"]["application/json"]["example"] = example
    return document


def _trimmed_length(converter, field, ret):
    """Trimmed fields count their length after trimming, which JSON Schema cannot say: describe it."""
    if isinstance(field, Trimmed) and ("minLength" in ret or "maxLength" in ret):
        low, high = ret.pop("minLength", 0), ret.pop("maxLength", None)
        return {"description": f"{low} to {high} characters after trimming white space"}
    return {}


def _operation(rule, view, operation):
    auth = getattr(view, "auth", None)
    parameters = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}} for name in rule.arguments
    ]
    if operation.query is not None:
        parameters.append({"in": "query", "schema": operation.query})
    result = {
        "summary": operation.summary,
        "operationId": rule.endpoint.replace(".", "_"),
        "tags": [rule.endpoint.split(".")[0].capitalize()],
        "responses": {},
    }
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": operation.body}}}
    if operation.form is not None:
        result["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": operation.form}}}
    for status in operation.statuses:
        response = {"description": "success" if status < 400 else "a dependency is down"}
        if status != 204 and operation.response is not None:
            response["content"] = {"application/json": {"schema": operation.response}}
        if operation.download:
            response["content"] = {"*/*": {"schema": BINARY}}  # the stored file's own type
        result["responses"][str(status)] = response
    errors = set(operation.errors) | {500}
    if auth:
        result["security"] = [{"bearer": []}]
        errors.add(401)
    if operation.body is not None or operation.form is not None or operation.query is not None:
        errors.add(400)
    if operation.body is not None or operation.form is not None:
        errors.add(413)
    for status in sorted(errors):
        result["responses"][str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": "Error"}},
            **({"headers": {"Retry-After": {"schema": {"type": "integer"}}}} if status == 429 else {}),
        }
    return result
