"""Answering with stored bytes: all of them or the one range a `Range` header asks for, with headers that
keep whatever a file holds from running in our origin."""

import unicodedata
from collections.abc import Callable, Iterable
from urllib.parse import quote

from flask import Response, request

from utils.errors import RangeNotSatisfiable

# Opened in a browser, a file runs nothing: no script, plugin, form or frame (GitHub's raw files do the same).
SANDBOX = "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"


def send_bytes(
    open_range: Callable[[int, int], Iterable[bytes]], size: int, content_type: str, name: str, inline: bool
) -> Response:
    """Answer with `size` bytes of `content_type`, read by `open_range(start, end)`: all of them (200), or the
    single range a `Range` header asks for (206; 416 when it starts past the end; several ranges get it all).
    `inline` shows it in the browser, otherwise it is offered for saving as `name`."""
    start, end, status = 0, size, 200
    wanted = request.range  # None when absent or malformed: then the whole file, as RFC 9110 allows
    if wanted is not None and wanted.units == "bytes" and len(wanted.ranges) == 1:
        first, stop = wanted.ranges[0]  # werkzeug's: [first, stop), or (-suffix length, None)
        start, end = (max(0, size + first), size) if first < 0 else (first, min(stop or size, size))
        if start >= size:
            raise RangeNotSatisfiable(size)
        status = 206
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(end - start),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition("inline" if inline else "attachment", name),
        "Cache-Control": "private",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX,
    }
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(open_range(start, end), status, headers, direct_passthrough=True)


def content_disposition(kind: str, name: str) -> str:
    """`kind; filename="<ASCII fallback>"; filename*=UTF-8''<name, percent-encoded>` (RFC 6266)."""
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = "".join("_" if char in '"\\' or not char.isprintable() else char for char in fallback).strip()
    fallback = fallback or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
