"""Log a dependency's outage once when it starts and once when it ends, not once per call."""

import logging


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
