"""Accounts: register, login, refresh, logout, me."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import login_per_address, login_per_username, register_per_address
from services import accounts, tokens
from utils.api import endpoint
from utils.schemas.accounts import LoginSchema, RegisterSchema, SessionSchema, TokenPairSchema, UserSchema


def _session(user):
    access, refresh = tokens.issue_pair(user)
    return {"user": user, "access_token": access, "refresh_token": refresh}


@register_per_address
@endpoint(body=RegisterSchema(), response=SessionSchema(), status=201, errors=(409, 429))
def register(body):
    """Create an account (a member of `general`) and sign it in."""
    return _session(accounts.do_register(**body))


@login_per_address
@login_per_username
@endpoint(body=LoginSchema(), response=SessionSchema(), errors=(401, 429))
def login(body):
    """Sign in with username and password."""
    return _session(accounts.check_credentials(body["username"], body["password"]))


@auth_required(token_type="refresh")
@endpoint(response=TokenPairSchema())
def refresh():
    """Trade a refresh token (as the bearer token) for a new pair; the old one stops working."""
    access, refresh_token = tokens.do_refresh(g.user, g.claims)
    return {"access_token": access, "refresh_token": refresh_token}


@auth_required
@endpoint(status=204)
def logout():
    """Revoke this access token and its refresh token; its sockets are disconnected."""
    tokens.do_logout(g.claims)


@auth_required
@endpoint(response=UserSchema())
def me():
    """The caller's account."""
    return g.user
