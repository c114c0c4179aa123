"""Reading request bodies: JSON objects, and multipart forms with files."""

import tempfile

from flask import current_app, request
from werkzeug.exceptions import BadRequest
from werkzeug.formparser import FormDataParser

from utils.errors import BadJson, PayloadTooLarge, ValidationFailed

# What an upload may hold in memory while it arrives; the rest waits in a temporary file.
SPOOL_MEMORY = 256 * 1024


def json_body():
    """Return the request body as a JSON object, or raise BadJson (any Content-Type is accepted)."""
    try:
        data = request.get_json(force=True)
    except (BadRequest, RecursionError):  # the parser recurses once per level of nesting
        raise BadJson("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadJson()
    return data


class _Spool(tempfile.SpooledTemporaryFile):
    """An uploaded file as the form parser writes it: in memory up to SPOOL_MEMORY bytes, then in a temporary
    file; PayloadTooLarge as soon as it passes `limit`."""

    def __init__(self, limit):
        super().__init__(max_size=SPOOL_MEMORY)
        self.limit, self.written = limit, 0

    def write(self, data):
        self.written += len(data)
        if self.written > self.limit:
            raise PayloadTooLarge(f"files are limited to {self.limit} bytes", {"file": [f"Over {self.limit} bytes."]})
        return super().write(data)


def form_body():
    """Return the fields and file parts of a multipart/form-data body (anything else has none), each file
    spooled as it arrives (`_Spool`). PayloadTooLarge as soon as a file passes MAX_UPLOAD_BYTES, or the body
    MAX_UPLOAD_BYTES plus MAX_CONTENT_LENGTH: before reading any of it when its Content-Length says so."""
    config = current_app.config
    limit, rest = config["MAX_UPLOAD_BYTES"], config["MAX_CONTENT_LENGTH"]
    parser = FormDataParser(
        stream_factory=lambda **part: _Spool(limit),
        max_content_length=limit + rest,
        # Flask's settings (500 kB, 1000): what the parser buffers of the fields (and of each 64 KiB read), and parts.
        max_form_memory_size=config["MAX_FORM_MEMORY_SIZE"],
        max_form_parts=config["MAX_FORM_PARTS"],
    )
    _, fields, files = parser.parse_from_environ(request.environ)
    parts = [*fields.lists(), *files.lists()]
    names = [name for name, values in parts for _ in values]
    repeated = {name: ["Sent more than once."] for name in names if names.count(name) > 1}
    if repeated:
        raise ValidationFailed("each form field once", repeated)
    return {name: values[0] for name, values in parts}
