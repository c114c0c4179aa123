"""Users: the caller, and other users by username prefix, id or username (to add them to rooms by name)."""

from controller import auth, users

RULES = [
    ("GET", "/users/me", auth.me),
    ("GET", "/users", users.search),
    ("GET", "/users/<user_ref>", users.get_user),
]
