"""eventlet WebSocket writes: a batch of frames leaves in one write, in order; a failed write ends the connection; a
broadcast buffers a frame only where it overtakes nothing."""

import os
import queue as stdlib_queue
import threading
from types import SimpleNamespace

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from utils.transport.fanout import DirectAcks, DirectWriter
from utils.transport.frames import BatchedWebSocket, PacketQueue
from utils.transport.packets import TextFirstPacket


class FakeWebSocket:
    """Stands in for eventlet's RFC6455WebSocket: frames are tagged, writes recorded."""

    def __init__(self):
        self.writes = []
        self.fail = False
        self._sendlock = threading.Lock()
        self.socket = self  # its own socket: sendall records

    def sendall(self, data):
        if self.fail:
            raise BrokenPipeError("peer went away")
        self.writes.append(data)

    def _pack_message(self, message):
        return f"[{message}]".encode()

    def _send(self, data):
        self.sendall(data)

    def send(self, message):
        self._send(self._pack_message(message))

    def _send_closing_frame(self, ignore_send_errors=False):
        self.writes.append("closed")

    def shutdown(self, how):
        pass


@pytest.fixture
def ws():
    return BatchedWebSocket(FakeWebSocket())


def test_a_writers_batch_leaves_in_one_write_when_it_flushes(ws):
    ws.buffer("a")  # the writer (sessions.LeanSocket.write_queue) buffers every packet it finds queued
    ws.buffer("b")
    assert ws.ws.writes == []
    ws.flush()  # the queue is empty
    assert ws.ws.writes == [b"[a][b]"]
    ws.buffer("c")
    ws.close()  # the writer's last act: what it buffered still goes out, before the close
    assert ws.ws.writes == [b"[a][b]", b"[c]", "closed"]


def test_a_send_goes_out_at_once_after_what_is_buffered(ws):
    ws.buffer("a")
    ws.send("probe")
    assert ws.ws.writes == [b"[a][probe]"]


def test_eventlets_own_writes_send_what_is_buffered_first(ws):
    ws.frames.append(b"[a]")  # a broadcast's frame, buffered by fanout.DirectWriter
    ws.ws.send("pong")  # eventlet answering a ping, or closing: through its _send
    assert ws.ws.writes == [b"[a]", b"[pong]"] and ws.frames == []


def test_frames_buffered_while_eventlet_writes_its_own_go_out_before_the_lock_is_let_go(ws):
    record = ws.ws.sendall

    def sendall(data):  # the kernel takes the pong slowly: a broadcast buffers a frame meanwhile
        record(data)
        if data in (b"[pong]", b"\x88close"):
            ws.frames.append(b"[b]")

    ws.ws.sendall = sendall
    ws.ws.send("pong")
    assert ws.ws.writes == [b"[pong]", b"[b]"]
    ws.ws._send(b"\x88close")  # nothing may follow a closing frame
    assert ws.ws.writes == [b"[pong]", b"[b]", b"\x88close"]


def test_a_failed_write_is_kept_and_raised_by_the_next_send(ws):
    ws.direct = True  # open to fanout's direct writes
    ws.buffer("a")
    ws.ws.fail = True
    ws.flush()  # the writer's flush fails without raising there
    assert isinstance(ws.error, BrokenPipeError)
    assert ws.direct is False  # fanout buffers nothing more here: the connection is done
    with pytest.raises(BrokenPipeError):
        ws.send("b")


def test_a_closing_frame_closes_the_websocket_to_fanout_before_it_goes_out(ws):
    ws.direct = True
    seen = []
    record = ws.ws.sendall

    def sendall(data):
        seen.append(ws.direct)  # what a broadcast waiting for this write would find
        record(data)

    ws.ws.sendall = sendall
    ws.ws.send("pong")  # eventlet's own frames leave it open
    assert ws.direct is True
    ws.ws._send(b"\x88close")  # eventlet's closing frame goes through its _send
    assert seen == [True, False] and ws.direct is False


def test_a_broadcast_buffers_only_where_it_overtakes_nothing_and_queues_elsewhere():
    queued, tasks = [], []
    eio = SimpleNamespace(sockets={}, ping_timeout=20)
    server = SimpleNamespace(
        eio=eio, _send_eio_packet=lambda sid, pkt: queued.append(sid), start_background_task=tasks.append
    )
    for sid, direct, writer in (("idle", True, None), ("writing", True, object()), ("closed", False, None)):
        ws = BatchedWebSocket(FakeWebSocket())
        ws.direct = direct
        eio.sockets[sid] = SimpleNamespace(websocket=ws, writer=writer, last_ping=None)
    eio.sockets["polling"] = SimpleNamespace(websocket=None, writer=None, last_ping=None)
    fanout = DirectWriter(server)
    fanout.broadcast(eio_packet.Packet(eio_packet.MESSAGE, "hello"), ["idle", "writing", "closed", "polling", "gone"])
    # A socket whose writer runs may have packets queued: a frame buffered now could overtake them.
    assert queued == ["writing", "closed", "polling", "gone"]
    assert eio.sockets["idle"].websocket.frames == [b"[4hello]"] and tasks == [fanout.write_all]


class EngineWay:
    """Stands in for python-socketio's Server under DirectAcks: what goes the engine's way is recorded."""

    def __init__(self, fanout):
        self.manager = SimpleNamespace(fanout=fanout)
        self.sent = []

    def _send_packet(self, eio_sid, pkt):
        self.sent.append((eio_sid, pkt.packet_type))


class AckingServer(DirectAcks, EngineWay):
    pass


def test_an_ack_goes_through_the_direct_writer_and_anything_else_the_engines_way():
    broadcasts = []
    fanout = SimpleNamespace(broadcast=lambda pkt, sids: broadcasts.append((pkt.packet_type, pkt.data, sids)))
    server = AckingServer(fanout)
    server._send_packet("s1", sio_packet.Packet(sio_packet.ACK, data=[{"ok": True}], id=7))
    server._send_packet("s1", sio_packet.Packet(sio_packet.EVENT, data=["message", {}]))
    server._send_packet("s1", TextFirstPacket(sio_packet.ACK, data=[b"raw"], id=8))  # binary: attachments
    assert broadcasts == [(eio_packet.MESSAGE, '37[{"ok":true}]', ["s1"])]
    assert server.sent == [("s1", sio_packet.EVENT), ("s1", sio_packet.BINARY_ACK)]
    alone = AckingServer(None)  # not eventlet: no DirectWriter
    alone._send_packet("s2", sio_packet.Packet(sio_packet.ACK, data=[{"ok": True}], id=9))
    assert alone.sent == [("s2", sio_packet.ACK)]


MESSAGE = {"id": "6b1039256d64f9ef25a43253", "messageBody": "hi", "reactions": [{"emoji": "x", "userIds": ["a"]}]}


@pytest.mark.parametrize(
    "packet_type, data",
    [
        (sio_packet.EVENT, ["message", MESSAGE]),
        (sio_packet.ACK, [{"ok": True, "message": MESSAGE}]),
        (sio_packet.EVENT, ["file", {"parts": [b"raw", "text", bytearray(b"more")]}]),
        (sio_packet.ACK, [{"ok": True, "blob": b"raw"}]),
        (sio_packet.EVENT, None),
    ],
)
def test_a_packet_made_as_text_encodes_as_python_socketios_own_binary_or_not(monkeypatch, packet_type, data):
    expected = sio_packet.Packet(packet_type, data=data, namespace="/", id=3).encode()
    walk, walked = sio_packet.Packet.data_is_binary, []
    monkeypatch.setattr(sio_packet.Packet, "data_is_binary", classmethod(lambda cls, d: walked.append(d) or walk(d)))
    assert TextFirstPacket(packet_type, data=data, namespace="/", id=3).encode() == expected
    # Its data is walked looking for bytes (the walk calls itself for each item) only once the encoder refused them.
    assert [each for each in walked if each is data] == ([] if isinstance(expected, str) else [data])


def test_a_packet_whose_data_the_encoder_refuses_for_another_reason_still_fails():
    with pytest.raises(TypeError):
        TextFirstPacket(sio_packet.EVENT, data=["message", {"at": object()}]).encode()


def test_a_put_tells_the_socket_of_its_queue():
    queue = type("Queue", (PacketQueue, stdlib_queue.Queue), {})()
    told = []
    queue.put("before")  # nobody to tell yet: the WebSocket is not open
    queue.on_put = lambda: told.append(queue.qsize())
    queue.put("a")
    queue.put(None)
    assert told == [2, 3]


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_unmasking_matches_the_rfc_byte_by_byte(offset):
    from utils.transport.frames import apply_mask

    mask = (0x12, 0xAB, 0x00, 0xFF)
    for length in (0, 1, 3, 4, 5, 127, 4096):
        data = os.urandom(length + 2)  # a longer buffer: only `length` bytes are unmasked
        expected = bytes(data[i] ^ mask[(offset + i) % 4] for i in range(length))
        assert apply_mask(data, mask, length, offset) == expected
        assert apply_mask(data, list(mask), length, offset) == expected
    assert apply_mask(b"abcd", mask) == bytes(b ^ m for b, m in zip(b"abcd", mask, strict=True))
