"""REST authentication: `auth_required` puts the caller in `g.user` and the token's claims in `g.claims`."""

from functools import wraps

from flask import g, request

from services import tokens
from utils.errors import Unauthorized


def bearer_token():
    """Return the token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    return token.strip()


def auth_required(view=None, token_type="access"):
    """Refuse requests without a valid, unrevoked token of `token_type` (401 `unauthorized`)."""
    if view is None:
        return lambda fn: auth_required(fn, token_type)

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.user, g.claims = tokens.authenticate(bearer_token(), token_type)
        return view(*args, **kwargs)

    wrapper.auth = token_type
    return wrapper


def auth_optional(view):
    """Like `auth_required` when an Authorization header is sent; without one, `g.user` is None (the view
    authorises the request another way: a signed URL)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.user = None
        if "Authorization" in request.headers:
            g.user, g.claims = tokens.authenticate(bearer_token(), "access")
        return view(*args, **kwargs)

    wrapper.auth = "access"
    return wrapper
