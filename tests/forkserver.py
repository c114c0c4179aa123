"""Starts `python server.py` processes for the suite by forking one that has already imported the server.

Most of a server's start is its imports (about 1.3 of 1.5 s of CPU on a slow machine) and the suite starts over a
hundred servers. This process does `python server.py`'s first steps once (eventlet's monkey patching, then the
server's modules, none of which reads a setting before the app is built) and forks a child per request, which builds
and serves the app as `server.main()` does, from its own environment.

Requests arrive on stdin as JSON lines `{"env": {...}, "log": path}`; each is answered on stdout with
`started <pid>`, and every child's end with `exited <pid> <code>` (the code as `subprocess.Popen.returncode` gives
it: negative for a signal). The process ends when stdin closes; its children live on (the suite stops them).
"""

import json
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAP_SECONDS = 0.05  # how often ended children are looked for between requests


def _reap(system_os):
    while True:
        try:
            pid, status = system_os.waitpid(-1, system_os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        print(f"exited {pid} {system_os.waitstatus_to_exitcode(status)}", flush=True)


def serve_requests(system_os, system_select):
    """Fork a child for each request and return its request in the child; return None in this process at EOF.
    `system_os` and `system_select` are the modules as they were before eventlet patched them: this process waits in
    the system's calls, never in eventlet's hub, which its children inherit."""
    requests = sys.stdin.fileno()
    pending = b""
    while True:
        _reap(system_os)
        if not system_select.select([requests], [], [], REAP_SECONDS)[0]:
            continue
        chunk = system_os.read(requests, 65536)
        if not chunk:
            return None
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = system_os.fork()
            if pid == 0:
                return request
            print(f"started {pid}", flush=True)


def become_server(request, hub, system_select):
    """In a forked child: the request's environment, its log as stdout and stderr, nothing on stdin, and an epoll of
    its own in eventlet's hub (importing the server made the hub, with a timer and no descriptor: the epoll inherited
    is the one every other child has)."""
    assert not any(hub.listeners.values()), "the hub watched a descriptor before the fork"
    hub.poll.close()
    hub.poll = system_select.epoll()
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for target, fd in ((0, null), (1, log), (2, log)):
        os.dup2(fd, target)
    os.close(null)
    os.close(log)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet
    import eventlet.hubs

    eventlet.monkey_patch()
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    import server

    system_os, system_select = eventlet.patcher.original("os"), eventlet.patcher.original("select")
    child = serve_requests(system_os, system_select)
    if child is not None:
        become_server(child, eventlet.hubs.get_hub(), system_select)
        server.main()
