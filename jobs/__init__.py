"""Commands run by cron or by an operator; each builds the app as the server does."""

import sys

from config import load_config


def build_app():
    """Return the configured app; jobs need a real database, so MONGODB_URI must be set."""
    if not load_config().MONGODB_URI:
        sys.exit("MONGODB_URI is not set (the database `make run` starts listens on mongodb://127.0.0.1:27027/chat)")
    from server import app

    return app
