"""Short pauses for the cyclic garbage collector of a serving process.

A full collection walks every object the interpreter tracks, and nothing else runs meanwhile:
no socket is read or written. A server with 2000 connections holds about 380,000 of them,
most living as long as their connection, and a full collection took 240 ms on the bench's
machine, once every few seconds under load (docs/PERFORMANCE.md). So after each full
collection what survived it is frozen (`gc.freeze`), and the next one walks only what came
after. A frozen object is never examined for cycles: a cycle among frozen objects that has
become garbage (a connection closed since) stays until they are thawed, which happens once
every `thaw_seconds`: the full collection after that walks everything.
"""

import gc
import time

OLDEST = 2  # CPython's generations are 0, 1 and 2; a full collection is one of generation 2


class _Policy:
    def __init__(self, thaw_seconds: float):
        self.thaw_seconds = thaw_seconds
        self.thawed_at = time.monotonic()

    def __call__(self, phase: str, info: dict) -> None:
        if phase != "stop" or info["generation"] != OLDEST:
            return
        now = time.monotonic()
        if now - self.thawed_at < self.thaw_seconds:
            gc.freeze()
        else:  # a collection cannot be started from its own callback: the next full one walks everything
            gc.unfreeze()
            self.thawed_at = now


def install(thaw_seconds: float) -> None:
    """Freeze what each full collection leaves; thaw every `thaw_seconds`. Call once, before serving."""
    gc.freeze()  # what start-up made (modules, the app) lives as long as the process
    gc.callbacks.append(_Policy(thaw_seconds))
