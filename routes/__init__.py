"""URL map: blueprints bind paths to controller functions, nothing else."""

from routes import accounts, health, messages, rooms

BLUEPRINTS = (accounts.bp, rooms.bp, messages.bp, health.bp)


def register_blueprints(app):
    """Mount every blueprint under /api."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix="/api")
