"""utils.gathered: callers of the same moment share one read, and each raises its failure from where it failed."""

import threading
import time
import traceback
from types import SimpleNamespace

import pytest

from utils import gathered


@pytest.fixture
def shared(monkeypatch):
    """A Gathered whose first caller waits 0.2 s for the others (threads here, greenlets in the server)."""
    monkeypatch.setattr(gathered, "socketio", SimpleNamespace(sleep=lambda _: time.sleep(0.2)))
    reads = []

    def read(keys):
        reads.append(sorted(keys))
        if "bad" in keys:
            raise LookupError("the read failed")
        return {key: key * 2 for key in keys}

    return gathered.Gathered(read), reads


def _call_at_once(shared, keys):
    """Call `shared` from a thread per key; return {key: result or (error, depth of its traceback when caught)}."""
    results = {}

    def call(key):
        try:
            results[key] = shared(key)
        except LookupError as error:
            results[key] = (error, len(traceback.extract_tb(error.__traceback__)))

    threads = [threading.Thread(target=call, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return results


def test_callers_of_the_same_moment_share_one_read(shared):
    read_together, reads = shared
    results = _call_at_once(read_together, ["a", "b", "c"])
    assert reads == [["a", "b", "c"]]
    assert all(result == {"a": "aa", "b": "bb", "c": "cc"} for result in results.values())


def test_the_callers_of_a_failed_read_each_raise_it_from_where_it_failed(shared):
    """A raise adds the raiser's frames to the error's traceback: callers raising the one error in turn each logged
    the frames of every caller before them (a storm of joins while the database was down: a log growing with the
    square of the joins)."""
    read_together, reads = shared
    results = _call_at_once(read_together, ["bad", "b", "c", "d", "e"])
    assert len(reads) == 1 and len({id(error) for error, _ in results.values()}) == 1
    assert len({depth for _, depth in results.values()}) == 1, results
