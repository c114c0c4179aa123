from controller import auth

RULES = [
    ("POST", "/auth/register", auth.register),
    ("POST", "/auth/login", auth.login),
    ("POST", "/auth/refresh", auth.refresh),
    ("POST", "/auth/logout", auth.logout),
]
