"""Signed, expiring file URLs: `/api/files/<id>?expires=<unix seconds>&sig=<HMAC>` (and `/thumbnail`), which
work without an Authorization header until they expire, so `<img src>` and downloads work in a browser.

The signature is HMAC-SHA256 over what the URL opens (the file or its thumbnail), the file id
and the expiry, keyed by a key derived from JWT_SECRET_KEY: changing any of them, or the
secret, breaks it.
"""

import base64
import hashlib
import hmac
import math
import time

from flask import current_app

PATHS = {"file": "/api/files/{}", "thumbnail": "/api/files/{}/thumbnail"}


def signed_url(file_id, variant: str) -> str:
    """The URL of a file (`variant` "file") or its thumbnail, valid for FILE_URL_TTL seconds from now (and
    less than a second more: the expiry is a whole second)."""
    expires = math.ceil(time.time() + current_app.config["FILE_URL_TTL"])
    return f"{PATHS[variant].format(file_id)}?expires={expires}&sig={_signature(file_id, variant, expires)}"


def check_signature(file_id, variant: str, expires: str | None, sig: str | None) -> bool:
    """Whether `sig` signs this file's `variant` until `expires`, and that time has not passed."""
    if not (expires and sig and expires.isascii() and expires.isdigit()) or time.time() > int(expires):
        return False
    return hmac.compare_digest(sig.encode(), _signature(file_id, variant, int(expires)).encode())


def _signature(file_id, variant, expires):
    message = f"{variant}:{file_id}:{expires}".encode()
    return base64.urlsafe_b64encode(hmac.digest(_key(), message, hashlib.sha256)).rstrip(b"=").decode()


def _key():
    # A key of its own: a file URL can never pass for anything else signed with the JWT secret.
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.digest(secret, b"chat file urls", hashlib.sha256)
