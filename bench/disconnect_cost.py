"""`python bench/disconnect_cost.py [--sockets N ...]`: what a disconnect costs the process's client manager.

Each socket is in its user's channel and one of N/10 rooms, as on a chat server, then all disconnect (a deploy,
a network blip). python-socketio's own manager looks for the socket in every room of the process, ours
(`utils/transport/managers.IndexedRooms`) leaves just its rooms. Prints the CPU time each took, in this process
(docs/PERFORMANCE.md).
"""

import argparse
import sys
import time
from pathlib import Path

import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.transport.managers import LocalManager


def disconnect_all(manager, count):
    """CPU seconds for `count` sockets, each in its user's channel and a shared room, to disconnect from `manager`."""
    socketio.Server(async_mode="threading", client_manager=manager)
    sids = [manager.connect(f"eio-{i}", "/") for i in range(count)]
    for i, sid in enumerate(sids):
        manager.enter_room(sid, "/", f"user-{i}")
        manager.enter_room(sid, "/", f"room-{i % max(1, count // 10)}")
    start = time.process_time()
    for sid in sids:
        manager.disconnect(sid, "/")
    return time.process_time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000, 10000])
    args = parser.parse_args()
    for count in args.sockets:
        for name, manager in (
            ("python-socketio's Manager", socketio.Manager()),
            ("ours (IndexedRooms)", LocalManager()),
        ):
            seconds = disconnect_all(manager, count)
            print(f"{count:6} sockets, {name:26} {seconds:8.3f} s of CPU, {seconds / count * 1e6:7.1f} µs a disconnect")


if __name__ == "__main__":
    main()
