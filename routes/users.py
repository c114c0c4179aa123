from controller import auth, users

RULES = [
    ("GET", "/users/me", auth.me),
    ("GET", "/users", users.search),
    ("GET", "/users/<user_ref>", users.get_user),
]
