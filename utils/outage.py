"""Log a dependency's outage once when it starts and once when it ends, not once per call."""

import logging
import sys

from pymongo.errors import ConnectionFailure, PyMongoError


class Outage:
    """Track one dependency; `failed()` and `recovered()` log only on a change of state."""

    def __init__(self, name, consequence):
        self.name, self.consequence = name, consequence
        self.down = False
        self.log = logging.getLogger(f"chat.outage.{name}")

    def failed(self, error):
        if not self.down:
            self.down = True
            self.log.warning("%s unreachable (%s): %s", self.name, error, self.consequence)

    def recovered(self):
        if self.down:
            self.down = False
            self.log.info("%s reachable again", self.name)


database = Outage("database", "what needs it fails with internal_error until it is back")


def log_failure(logger, message, *args):
    """Log the exception being handled: the database out of reach or past a deadline once for the whole outage (the
    same traceback for every event and request that met it said nothing more), anything else with its traceback."""
    error = sys.exc_info()[1]
    if isinstance(error, ConnectionFailure) or (isinstance(error, PyMongoError) and error.timeout):
        database.failed(error)
    else:
        logger.exception(message, *args)
