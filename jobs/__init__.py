"""Commands run by cron or by an operator; each builds the app as the server does."""

import os

# Jobs run plain threads: their emits leave through the message queue (REDIS_URL) and nothing
# is served. Set before `config` is imported, which reads the environment once.
os.environ["ASYNC_MODE"] = "threading"

import sys

from pymongo.errors import PyMongoError

from config import load_config


def build_app():
    """Return the app built as the server builds it; exit 1 when the database is unset or unreachable."""
    if not load_config().MONGODB_URI:
        sys.exit("MONGODB_URI is not set (the database `make run` starts listens on mongodb://127.0.0.1:27027/chat)")
    try:
        from server import app
    except PyMongoError as error:
        sys.exit(f"cannot reach the database: {str(error).split(',')[0]}")
    return app
