"""The collector's policy for serving processes (utils/gc_policy.py), in a process of its own."""

import json
import subprocess
import sys
import textwrap

from tests.support import ROOT

SCRIPT = textwrap.dedent(
    """
    import gc, json, time, weakref
    from utils import gc_policy

    class Node:
        pass

    def cycle():
        node = Node()
        node.me = node
        return weakref.ref(node)

    gc_policy.install(thaw_seconds=1)
    kept = [[] for _ in range(20000)]
    died = cycle()  # garbage at once: a young cycle, freed by the first full collection
    gc.collect()
    frozen = gc.get_freeze_count()
    survivor = Node()
    survivor.me = survivor
    later = weakref.ref(survivor)
    gc.collect()  # a full collection: the survivor is frozen with what it left
    del survivor  # garbage now, but frozen: no collection looks at it
    gc.collect()
    kept_frozen = later() is not None
    time.sleep(1.2)
    gc.collect()  # the first full collection after thaw_seconds thaws everything
    gc.collect()  # and the next walks it all
    print(json.dumps({"died": died() is None, "frozen": frozen, "kept_frozen": kept_frozen,
                      "freed_after_thaw": later() is None, "refrozen": gc.get_freeze_count() > 20000}))
    """
)


def test_full_collections_freeze_their_survivors_and_thaw_now_and_then():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["died"] and result["frozen"] >= 20000
    assert result["kept_frozen"], "a frozen cycle is not collected before the thaw"
    assert result["freed_after_thaw"] and result["refrozen"]
