"""Reads shared by the callers that arrive at the same moment (a storm of connects or joins)."""

import threading

from utils.extensions import socketio


class Gathered:
    """`read(keys)` made once for every caller of the same moment; each caller gets its whole result.

    The first caller to arrive opens a batch and lets the others run (`socketio.sleep(0)`: under eventlet, every
    caller that arrived in the same turn of the hub joins); then it closes the batch, reads for all of them, and
    wakes them. Each read starts after its caller arrived, as a read of its own would; a caller arriving while a
    batch reads opens the next. A failed read fails every caller of its batch."""

    def __init__(self, read):
        self.read = read
        self._open = None  # the batch callers join, until its read starts
        self._lock = threading.Lock()  # a green lock under eventlet and gevent; threads need it

    def __call__(self, key):
        with self._lock:
            batch, first = self._open, self._open is None
            if first:
                batch = self._open = _Batch()
            batch.keys.append(key)
        if first:
            socketio.sleep(0)
            with self._lock:
                self._open = None
            batch.run(self.read)
        batch.done.wait()
        if batch.error is not None:
            # Each caller raises from where the read failed: a raise adds the raiser's frames to the error's
            # traceback, so the callers of one error would each log the frames of every caller before them.
            raise batch.error.with_traceback(batch.traceback)
        return batch.result


class _Batch:
    def __init__(self):
        self.keys = []
        self.done = threading.Event()
        self.result = self.error = self.traceback = None

    def run(self, read):
        try:
            self.result = read(self.keys)
        except Exception as error:  # every caller waiting on this read gets it
            self.error, self.traceback = error, error.__traceback__
        finally:
            self.done.set()
