"""Giving back to the system the memory a burst freed (glibc's allocator).

A connect storm allocates at once what thousands of connects in flight hold (greenlets' saved stacks, WSGI environs,
Flask contexts, buffers) and frees it once they are answered. glibc keeps what is freed inside its heap for later
allocations and returns only the top of the heap by itself: the connections that live on pin the rest. After 5000
connections at once, half of the server's heap was free (35 of 70 MB), about 7 KiB of resident memory per
connection (docs/PERFORMANCE.md). `malloc_trim(0)` hands the free pages inside the heap back to the kernel.

Checked once a second: the heap's free bytes (`mallinfo2`, about 0.3 ms with ten thousand free chunks), and a trim
(a few milliseconds) only when they grew by `threshold` since the last trim or the lowest seen after it. Memory
freed and taken again by a steady load stays in the heap, rather than going back only to be faulted in again.
Elsewhere than glibc (musl, macOS) nothing is done.
"""

import ctypes
from collections.abc import Callable

TICK_SECONDS = 1
# glibc's struct mallinfo2, every field a size_t; `fordblks` is the bytes free in the heap
MALLINFO2 = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2]


def glibc() -> tuple[Callable[[], int], Callable[[], None]] | None:
    """(the heap's free bytes, trim) from glibc 2.33 or later, or None where the process has no such allocator."""
    try:
        process = ctypes.CDLL(None)
        info, trim = process.mallinfo2, process.malloc_trim
    except (OSError, AttributeError):
        return None
    info.restype = _MallInfo2
    trim.argtypes = [ctypes.c_size_t]
    return (lambda: info().fordblks), (lambda: trim(0))


class Trimmer:
    """Trims when the free bytes grew by `threshold` over the floor: the free bytes at the last trim, or the lowest
    seen since (what a load took back and may free again)."""

    def __init__(self, threshold: int, free_bytes: Callable[[], int], trim: Callable[[], None]):
        self.threshold = threshold
        self.free_bytes = free_bytes
        self.trim = trim
        self.floor = free_bytes()

    def tick(self) -> bool:
        free = self.free_bytes()
        if free - self.floor < self.threshold:
            self.floor = min(self.floor, free)
            return False
        self.trim()
        self.floor = free
        return True


def start(socketio, threshold_mb: int) -> Trimmer | None:
    """Trim once a second when due, in a background task of the serving process; nothing when `threshold_mb` is not
    above 0 or the allocator is not glibc's."""
    allocator = glibc()
    if threshold_mb <= 0 or allocator is None:
        return None
    trimmer = Trimmer(threshold_mb << 20, *allocator)

    def run():
        while True:
            socketio.sleep(TICK_SECONDS)
            trimmer.tick()

    socketio.start_background_task(run)
    return trimmer
