"""Giving the heap's free pages back (utils/heap.py): the policy, and glibc's trim in a process of its own."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support import ROOT
from utils import heap

# What a connect storm leaves: many blocks malloc'd at once (above obmalloc's 512 bytes, below the mmap threshold),
# most freed, and every fourth living on, pinning the freed ones inside the heap.
STORM = textwrap.dedent(
    """
    import json
    from utils import heap

    def rss_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    trimmer = heap.Trimmer(8 << 20, *heap.glibc())
    blocks = [bytearray((600, 1200, 3000, 9000)[i % 4]) for i in range(40000)]
    kept = blocks[1::4]
    del blocks
    before = rss_kib()
    trimmed = trimmer.tick()
    after = rss_kib()
    print(json.dumps({"trimmed": trimmed, "freed_kib": before - after, "again": trimmer.tick(), "kept": len(kept)}))
    """
)


@pytest.mark.skipif(heap.glibc() is None, reason="glibc's allocator only")
def test_a_trim_gives_back_what_a_burst_freed_inside_the_heap():
    out = subprocess.run([sys.executable, "-c", STORM], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # 30,000 blocks of 600-9000 bytes freed: about 100 MB, all of it resident until the trim
    assert result["trimmed"] and result["freed_kib"] > 50_000, result
    assert not result["again"], "nothing more was freed since"


class Heap:
    """Free bytes as a test sets them; the trims counted."""

    def __init__(self):
        self.free, self.trims = 0, 0

    def trim(self):
        self.trims += 1


def test_a_trim_waits_for_threshold_more_free_bytes_than_the_floor():
    fake = Heap()
    trimmer = heap.Trimmer(10, lambda: fake.free, fake.trim)
    steps = []
    for free in (5, 9, 12, 12, 15, 4, 13, 14):
        fake.free = free
        steps.append(trimmer.tick())
    # 12 is 10 over the start's 0: trimmed; 15 is not 10 over 12; the load takes back down to 4, and 14 is 10 over it
    assert steps == [False, False, True, False, False, False, False, True]
    assert fake.trims == 2


def test_no_trimming_when_turned_off():
    assert heap.start(socketio=None, threshold_mb=0) is None
