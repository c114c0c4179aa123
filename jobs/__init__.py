"""Commands run by cron or by an operator; each builds the app as the server does."""

import sys

from pymongo.errors import PyMongoError

from config import ConfigError, load_config
from server import create_app

# Jobs serve nothing: plain threads; their emits leave through the message queue (REDIS_URL).
JOB_SETTINGS = {"ASYNC_MODE": "threading"}


def build_app():
    """Return the app built as the server builds it; exit 1 on a refused setting or an unset or unreachable database."""
    try:
        if not load_config(**JOB_SETTINGS)["MONGODB_URI"]:
            sys.exit(
                "MONGODB_URI is not set (the database `make run` starts listens on mongodb://127.0.0.1:27027/chat)"
            )
        return create_app(**JOB_SETTINGS)
    except ConfigError as error:
        sys.exit(str(error))
    except PyMongoError as error:
        sys.exit(f"cannot reach the database: {str(error).split(',')[0]}")
