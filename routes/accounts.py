from flask import Blueprint

from controller import auth

bp = Blueprint("accounts", __name__)
bp.add_url_rule("/auth/register", view_func=auth.register, methods=["POST"])
bp.add_url_rule("/auth/login", view_func=auth.login, methods=["POST"])
bp.add_url_rule("/auth/refresh", view_func=auth.refresh, methods=["POST"])
bp.add_url_rule("/auth/logout", view_func=auth.logout, methods=["POST"])
bp.add_url_rule("/users/me", view_func=auth.me, methods=["GET"])
