"""`python server.py` for the suite, forked from tests/forkserver.py (one per test process) instead of started anew."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

FORKSERVER = Path(__file__).with_name("forkserver.py")


class ForkServer:
    """The fork server of this process, started on first use; it ends when this process does (its stdin closes)."""

    _lock = threading.Lock()
    _current = None

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._current is None or cls._current.proc.poll() is not None:
                cls._current = cls()
            return cls._current

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(FORKSERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            text=True,
        )
        self.started = []
        self.exits = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            what, pid, *code = line.split()
            with self.changed:
                if what == "started":
                    self.started.append(int(pid))
                else:
                    self.exits[int(pid)] = int(code[0])
                self.changed.notify_all()
        with self.changed:  # the fork server is gone: no exit of its children will be told any more
            self.proc.wait()
            self.changed.notify_all()

    def start(self, env, log_path):
        """Fork a server with `env`, its output appended to `log_path`; a `Forked` process."""
        with self._lock, self.changed:
            self.proc.stdin.write(json.dumps({"env": env, "log": str(log_path)}) + "\n")
            self.proc.stdin.flush()
            if not self.changed.wait_for(lambda: self.started or self.proc.poll() is not None, 30):
                raise RuntimeError("the fork server did not answer")
            if not self.started:
                raise RuntimeError(f"the fork server exited with {self.proc.returncode}")
            return Forked(self, self.started.pop(0))

    def wait(self, pid, timeout):
        """The exit code of child `pid` within `timeout` seconds (None: not at all), else None."""
        with self.changed:
            self.changed.wait_for(lambda: pid in self.exits or self.proc.poll() is not None, timeout)
            return self.exits.get(pid)


class Forked:
    """What the suite uses of `subprocess.Popen`, for a server forked by a `ForkServer`."""

    def __init__(self, forkserver, pid):
        self.forkserver, self.pid, self.returncode = forkserver, pid, None

    def poll(self):
        return self.wait(0)

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self.forkserver.wait(self.pid, timeout)
            if self.returncode is None and timeout != 0:
                raise subprocess.TimeoutExpired(f"server {self.pid}", timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)
