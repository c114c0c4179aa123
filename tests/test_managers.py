"""The client managers' index of each socket's rooms (utils/transport/managers.py), held to python-socketio's own
answer, which looks in every room."""

import socketio

from utils.transport.managers import LocalManager

NS = "/"


def _scanned(manager, sid):
    """python-socketio's own answer: the rooms whose members include the socket."""
    return set(socketio.Manager.get_rooms(manager, sid, NS))


def test_a_socket_leaves_every_room_it_was_in_and_no_other():
    manager = LocalManager()
    socketio.Server(async_mode="threading", client_manager=manager)
    sids = [manager.connect(f"eio-{i}", NS) for i in range(6)]
    for i, sid in enumerate(sids):
        manager.enter_room(sid, NS, f"user-{i}")
        manager.enter_room(sid, NS, "shared")
        if i % 2:
            manager.enter_room(sid, NS, "odd")
    manager.leave_room(sids[1], NS, "shared")
    manager.close_room("odd", NS)
    for sid in sids:
        assert (
            set(manager.get_rooms(sid, NS))
            == _scanned(manager, sid)
            == {f"user-{sids.index(sid)}", sid} | (set() if sid == sids[1] else {"shared"})
        )
    manager.disconnect(sids[0], NS)
    assert manager.get_rooms(sids[0], NS) == [] and _scanned(manager, sids[0]) == set()
    assert "user-0" not in manager.rooms[NS] and set(manager.rooms[NS]["shared"]) == set(sids[2:])
    assert not manager.is_connected(sids[0], NS) and manager.is_connected(sids[2], NS)
    for sid in sids[1:]:
        manager.disconnect(sid, NS)
    assert manager.rooms == {} and manager.rooms_of == {}


def test_sockets_waiting_to_connect_are_not_connected_until_their_handler_answers():
    manager = LocalManager()
    socketio.Server(async_mode="threading", client_manager=manager)
    waiting = [manager.pre_connect(f"eio-{i}", NS) for i in range(5)]  # a storm: every handler still running
    assert not any(manager.is_connected(sid, NS) for sid in waiting)
    assert manager.pre_connect("eio-0", NS) is None  # the same engine.io socket twice
    manager.disconnect(waiting[2], NS)  # its handler refused it
    for sid in reversed(waiting[3:]):
        assert manager.connect(sid, NS) == sid
    assert [manager.is_connected(sid, NS) for sid in waiting] == [False, False, False, True, True]
    assert list(manager.pending_connect[NS]) == waiting[:2]
    for sid in waiting[:2]:
        manager.connect(sid, NS)
    assert manager.pending_connect == {} and all(manager.is_connected(sid, NS) for sid in waiting[:2])
