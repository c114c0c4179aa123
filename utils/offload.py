"""CPU-heavy work (password hashes, image decoding) in eventlet's pool of OS threads, so the event loop
goes on serving every other client meanwhile."""

import sys
from functools import cache

from flask import current_app


def off_the_loop(lane: str, at_once: int, work, *args):
    """Run `work(*args)` in eventlet's OS thread pool when serving on eventlet, `at_once` of this `lane` at a
    time (each may hold much memory); elsewhere (jobs, the benchmark's other servers) call it."""
    patcher = sys.modules.get("eventlet.patcher")
    if current_app.config["ASYNC_MODE"] != "eventlet" or not (patcher and patcher.is_monkey_patched("thread")):
        return work(*args)
    from eventlet import tpool  # only here: a process that is not on eventlet never imports it

    with _slots(lane, at_once):
        return tpool.execute(work, *args)


@cache
def _slots(lane, at_once):
    from eventlet.semaphore import Semaphore

    return Semaphore(at_once)
