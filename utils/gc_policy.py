"""Short pauses for the cyclic garbage collector of a serving process.

A full collection walks every object the interpreter tracks, and nothing else runs meanwhile:
no socket is read or written. A server with 2000 connections holds about 380,000 of them,
most living as long as their connection, and a full collection took 240 ms on the bench's
machine, once every few seconds under load (docs/PERFORMANCE.md). So after each full
collection what survived it is frozen (`gc.freeze`), and the next one walks only what came
after. A frozen object is never examined for cycles: a cycle among frozen objects that has
become garbage (a connection closed since: about 13 KiB each) stays until they are thawed.
They are, so that the next full collection walks everything, once the frozen objects are
twice as many as after the last such walk (garbage then takes at most as much room as what
lives, as a collector's heap would), or `thaw_seconds` after the last thaw at the latest.
"""

import gc
import time

OLDEST = 2  # CPython's generations are 0, 1 and 2; a full collection is one of generation 2
GROWTH = 2  # thaw once the frozen objects are this many times what the last walk of everything left


class _Policy:
    def __init__(self, thaw_seconds: float):
        self.thaw_seconds = thaw_seconds
        self.thawed_at = time.monotonic()
        # How many objects are frozen, counted as they are (gc.get_freeze_count walks them all: 10% of a connect
        # storm's CPU, called after every full collection), and what the last walk of everything left frozen.
        self.frozen = self.walked = gc.get_freeze_count()

    def __call__(self, phase: str, info: dict) -> None:
        if phase != "stop" or info["generation"] != OLDEST:
            return
        now = time.monotonic()
        if self.walked is not None and (
            now - self.thawed_at >= self.thaw_seconds or self.frozen > GROWTH * self.walked
        ):
            gc.unfreeze()  # a collection cannot be started from its own callback: the next full one walks everything
            self.thawed_at, self.walked, self.frozen = now, None, 0
            return
        self.frozen += len(gc.get_objects(OLDEST))  # what survived this collection, and only that: the rest is frozen
        gc.freeze()
        if self.walked is None:
            self.walked = self.frozen


def install(thaw_seconds: float) -> None:
    """Freeze what each full collection leaves; thaw when that doubled, or every `thaw_seconds`. Call once, before
    serving."""
    gc.freeze()  # what start-up made (modules, the app) lives as long as the process
    gc.callbacks.append(_Policy(thaw_seconds))
