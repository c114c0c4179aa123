"""URL map: each module's RULES bind paths to controller functions, nothing else."""

from flask import Blueprint

from routes import accounts, health, messages, rooms

MODULES = (accounts, rooms, messages, health)


def register_blueprints(app):
    """Mount one blueprint per module under /api."""
    for module in MODULES:
        blueprint = Blueprint(module.__name__.rsplit(".", 1)[-1], module.__name__)
        for method, path, view in module.RULES:
            blueprint.add_url_rule(path, view_func=view, methods=[method])
        app.register_blueprint(blueprint, url_prefix="/api")
