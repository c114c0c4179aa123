"""Accounts: register, login, refresh, logout, me."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import login_per_address, login_per_username, register_per_address
from services import accounts, tokens
from utils.http import json_body
from utils.schemas import load
from utils.schemas.accounts import LoginSchema, RegisterSchema, SessionSchema, TokenPairSchema, UserSchema


def _session(user, status):
    access, refresh = tokens.issue_pair(user)
    return SessionSchema().dump({"user": user, "access_token": access, "refresh_token": refresh}), status


@register_per_address
def register():
    data = load(RegisterSchema(), json_body())
    return _session(accounts.do_register(**data), 201)


@login_per_address
@login_per_username
def login():
    data = load(LoginSchema(), json_body())
    return _session(accounts.check_credentials(data["username"], data["password"]), 200)


@auth_required(token_type="refresh")
def refresh():
    access, refresh_token = tokens.do_refresh(g.user, g.claims)
    return TokenPairSchema().dump({"access_token": access, "refresh_token": refresh_token})


@auth_required
def logout():
    tokens.do_logout(g.claims)
    return "", 204


@auth_required
def me():
    return UserSchema().dump(g.user)
