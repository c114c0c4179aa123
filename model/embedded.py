"""The embedded default database: a SecantusDB daemon (MongoDB wire protocol) on a free local port."""

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

# SecantusDB (0.7.0b3) remembers each retryable write for 30 minutes, up to 10,000 of them, and walks
# (once full, sorts) that record on every write, so a daemon slows down with every write it takes
# (py-spy on `make bench`: the daemon's CPU per message grew fourfold in one run). A local daemon has
# no failover for a retry to survive, so the URIs it hands out ask drivers for plain writes.
DRIVER_OPTIONS = "retryWrites=false"


class EmbeddedDbError(RuntimeError):
    """The embedded database cannot start; the message says why in one line."""


def free_port():
    """Return a TCP port nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port):
    """Whether something listens on 127.0.0.1:`port` (a socket lingering in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _die_with_parent():
    # Linux: the daemon is killed when the process that started it dies, even by SIGKILL. Killed, not sent SIGTERM:
    # SecantusDB's SIGTERM handler (0.7.0b3) can hang for good when another signal comes while it runs (two SIGTERMs
    # back to back left 5 daemons of 10 running), as this one would while it handled `stop_daemon`'s. What a daemon
    # acknowledged is in its journal, which its next start replays.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def start_daemon(storage_path=":memory:", port=None, log_path=os.devnull, timeout=30):
    """Start `secantusd-py`, wait until it accepts connections, return (process, mongodb URI).

    A `port` another process listens on is refused (EmbeddedDbError), never connected to: that
    would silently share another server's database (a second `make run`).
    """
    exe = shutil.which("secantusd-py") or os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    if not os.path.exists(exe):
        raise EmbeddedDbError(
            "MONGODB_URI is unset and SecantusDB is not installed (pip install -r requirements-dev.txt)"
        )
    if port and _port_taken(port):
        raise EmbeddedDbError(
            f"EMBEDDED_DB_PORT {port} is in use (another `make run`?): stop that server, share its database with "
            f"MONGODB_URI=mongodb://127.0.0.1:{port}/chat, or set EMBEDDED_DB_PORT and EMBEDDED_DB_PATH to others"
        )
    if storage_path != ":memory:":
        os.makedirs(storage_path, exist_ok=True)
    port = port or free_port()
    # Standalone: by default the daemon poses as a one-node replica set (for drivers' change streams, which
    # nothing here uses) and keeps an oplog entry of every write, about 95 µs of its CPU an insert or update.
    cmd = [exe, "--standalone", "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage_path]
    cmd += ["--log-level", "WARNING"]
    # A session of its own: a Ctrl-C in the terminal (its process group) reaches the server alone, which stops the
    # daemon with one SIGTERM (`stop_daemon`), and not the daemon too: a second signal is what can hang it.
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, start_new_session=True
        )
    atexit.register(stop_daemon, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedDbError(f"secantusd-py exited with {proc.returncode}; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"mongodb://127.0.0.1:{port}/chat?{DRIVER_OPTIONS}"
        except OSError:
            time.sleep(0.1)
    stop_daemon(proc)
    raise EmbeddedDbError(f"secantusd-py did not listen on port {port} within {timeout}s")


def with_database(uri, name):
    """The same server and options, another database."""
    return urlsplit(uri)._replace(path=f"/{name}").geturl()


def stop_daemon(proc):
    """Stop a daemon started by `start_daemon`, giving it time to close its storage cleanly."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
