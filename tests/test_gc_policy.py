"""The collector's policy for serving processes (utils/gc_policy.py), in processes of their own."""

import json
import subprocess
import sys
import textwrap

from tests.support import ROOT

PRELUDE = textwrap.dedent(
    """
    import gc, json, time, weakref
    from utils import gc_policy

    class Node:
        pass

    def cycles(count):
        nodes = [Node() for _ in range(count)]
        for node in nodes:
            node.me = node
        return nodes
    """
)

# The survivors of a full collection are frozen; garbage among them waits for thaw_seconds.
BY_TIME = """
gc_policy.install(thaw_seconds=1)
died = weakref.ref(cycles(1)[0])  # garbage at once: a young cycle, freed by the first full collection
gc.collect()
survivor = cycles(1)[0]
later = weakref.ref(survivor)
gc.collect()  # a full collection: the survivor is frozen with what it left
del survivor  # garbage now, but frozen: no collection looks at it
gc.collect()
kept = later() is not None
time.sleep(1.2)
gc.collect()  # the first full collection after thaw_seconds thaws everything
gc.collect()  # and the next walks it all
print(json.dumps({"died": died() is None, "kept": kept, "freed": later() is None, "frozen": gc.get_freeze_count()}))
"""

# Frozen garbage that outgrows what lives is walked without waiting for the time.
BY_GROWTH = """
gc_policy.install(thaw_seconds=3600)
walked = gc.get_freeze_count()
junk = cycles(3 * walked)
later = weakref.ref(junk[0])
gc.collect()  # frozen: now four times what the start-up left
del junk
gc.collect()  # garbage, frozen: this collection does not see it, and thaws
kept = later() is not None
gc.collect()  # walks everything
print(json.dumps({"kept": kept, "freed": later() is None, "frozen": gc.get_freeze_count(), "walked": walked}))
"""


def _run(script):
    out = subprocess.run([sys.executable, "-c", PRELUDE + script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_full_collections_freeze_their_survivors_and_thaw_after_a_while():
    result = _run(BY_TIME)
    assert result["died"], "young garbage is collected as ever"
    assert result["kept"], "a frozen cycle is not collected before the thaw"
    assert result["freed"] and result["frozen"] > 0, "collected after it, and what lives is frozen again"


def test_frozen_garbage_as_large_as_what_lives_is_collected_at_once():
    result = _run(BY_GROWTH)
    assert result["kept"] and result["freed"]
    assert result["frozen"] < 2 * result["walked"], "what is frozen again is what lives"
