"""The suite's servers are forked (tests/forkserver.py): each must behave as `python server.py` started anew."""

import os
import re
import signal
from pathlib import Path

import pytest
import socketio

from tests.support import Api, LiveServer, SocketClient, register


def watched_elsewhere(pid):
    """The files that process `pid`'s epolls watch and that it does not hold (Linux: /proc): another process's,
    when an epoll is shared. What it holds is read before and after the epolls, so that a socket opened or closed
    meanwhile is not taken for another's."""
    before, watched = _open_files(pid), set()
    for fd, target in before.items():
        if target == "anon_inode:[eventpoll]":
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            watched |= {str(int(ino, 16)) for ino in re.findall(r"^tfd:.* ino:([0-9a-f]+)", info, re.MULTILINE)}
    held = {re.sub(r"\D", "", target) for target in [*before.values(), *_open_files(pid).values()]}
    return watched - held


def _open_files(pid):
    files = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            files[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
    return files


def test_a_forked_server_reads_its_own_settings_and_exits_as_a_started_one_would(mongo_uri, tmp_path):
    refused = LiveServer(mongo_uri, tmp_path, MAX_SOCKETS_PER_USER="many")
    with pytest.raises(RuntimeError, match="server exited with 1"):
        refused.start()
    assert "MAX_SOCKETS_PER_USER" in refused.log()

    one, two = (LiveServer(mongo_uri, tmp_path, MAX_SOCKETS_PER_USER=str(n)).start() for n in (1, 2))
    try:
        user = register(Api(one.url))
        for server, allowed in ((one, 1), (two, 2)):  # each its own setting, though forked from the same process
            sockets = [SocketClient(server.url, user.token).connect() for _ in range(allowed)]
            with pytest.raises(socketio.exceptions.ConnectionError):
                SocketClient(server.url, user.token).connect()
            assert watched_elsewhere(server.proc.pid) == set()  # its own epoll, though forked with an event hub
            for socket in sockets:
                socket.close()
        one.proc.send_signal(signal.SIGKILL)
        assert one.proc.wait(10) == -signal.SIGKILL
        assert one.proc.poll() == -signal.SIGKILL
        assert Api(two.url).get("/api/health").status_code == 200  # its siblings serve on
    finally:
        one.stop()
        two.stop()
