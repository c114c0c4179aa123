from flask import Blueprint

from controller import health

bp = Blueprint("health", __name__)
bp.add_url_rule("/health", view_func=health.health, methods=["GET"])
