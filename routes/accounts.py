"""Accounts: register, log in, trade a refresh token for a new pair, log out. Register and login need no token."""

from controller import auth

RULES = [
    ("POST", "/auth/register", auth.register),
    ("POST", "/auth/login", auth.login),
    ("POST", "/auth/refresh", auth.refresh),
    ("POST", "/auth/logout", auth.logout),
]
