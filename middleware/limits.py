"""Rate-limit keys and limits for the REST routes (Flask-Limiter notation, from config)."""

from flask import current_app, request
from flask_limiter.util import get_remote_address

from utils.extensions import limiter


def _username_key():
    body = request.get_json(silent=True, force=True)
    username = body.get("username") if isinstance(body, dict) else None
    return f"login-user:{username.lower() if isinstance(username, str) else ''}"


login_per_address = limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=get_remote_address)
login_per_username = limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_username_key)
register_per_address = limiter.limit(lambda: current_app.config["REGISTER_RATE_LIMIT"], key_func=get_remote_address)
