"""Rate-limit keys and limits for the REST routes (Flask-Limiter notation, from config): failed
logins per username from one address and per address, registrations per address, and per-user
actions counted with the socket events that share their budget."""

from functools import wraps

from flask import current_app, g
from flask_limiter.util import get_remote_address

from services.ratelimit import check_rate
from utils.errors import BadJson
from utils.extensions import limiter
from utils.http import json_body


def _failed(response):
    # Only failures count: guesses at someone's password never make their right one wait.
    return response.status_code == 401


def _username_at_address():
    try:
        username = json_body().get("username")
    except BadJson:
        username = None  # the view answers bad_json
    return f"login-user:{username.lower() if isinstance(username, str) else ''}@{get_remote_address()}"


login_per_address = limiter.limit(
    lambda: current_app.config["LOGIN_ADDRESS_RATE_LIMIT"], key_func=get_remote_address, deduct_when=_failed
)
login_per_username = limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_username_at_address, deduct_when=_failed
)
register_per_address = limiter.limit(lambda: current_app.config["REGISTER_RATE_LIMIT"], key_func=get_remote_address)


def per_user(action):
    """Count one `action` for the signed-in user before the view runs (place under auth_required)."""

    def decorate(view):
        @wraps(view)
        def limited(*args, **kwargs):
            check_rate(g.user, action)
            return view(*args, **kwargs)

        return limited

    return decorate
