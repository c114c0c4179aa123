"""The eventlet WebSocket writer: a batch of frames leaves in one write, in order; failures end the writer."""

import os
import queue as stdlib_queue
import threading

import greenlet
import pytest

from utils.transport.frames import BatchedWebSocket, PacketQueue


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

    def close(self):
        self.writes.append("closed")


@pytest.fixture
def queue():
    # engine.io's eventlet queue has the same get/put; eventlet itself stays out of the test process.
    queue = type("Queue", (PacketQueue, stdlib_queue.Queue), {})()
    queue.socket = BatchedWebSocket(FakeWebSocket())
    return queue


def test_a_writers_batch_leaves_in_one_write_when_it_goes_back_to_its_queue(queue):
    ws = queue.socket
    queue.put("a")
    queue.put("b")
    assert queue.get() == "a"  # the writer's blocking get: this greenlet is now the writer
    assert queue.get(block=False) == "b"
    ws.send("a")
    ws.send("b")
    assert ws.ws.writes == []
    queue.put("c")
    assert queue.get() == "c"
    assert ws.ws.writes == [b"[a][b]"]
    ws.send("c")
    ws.close()  # the writer's last act: what it buffered still goes out, before the close
    assert ws.ws.writes == [b"[a][b]", b"[c]", "closed"]


def test_sends_from_other_greenlets_go_out_at_once(queue):
    ws = queue.socket
    queue.put("x")
    queue.get()
    greenlet.greenlet(lambda: ws.send("probe")).switch()
    assert ws.ws.writes == [b"[probe]"]


def test_eventlets_own_writes_send_what_is_buffered_first(queue):
    ws = queue.socket
    ws.frames.append(b"[a]")  # a broadcast's frame, buffered by fanout.DirectWriter
    ws.ws.send("pong")  # eventlet answering a ping, or closing: through its _send
    assert ws.ws.writes == [b"[a]", b"[pong]"] and ws.frames == []


def test_frames_buffered_while_eventlet_writes_its_own_go_out_before_the_lock_is_let_go(queue):
    ws = queue.socket
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


def test_a_failed_write_is_raised_by_the_writers_next_send(queue):
    ws = queue.socket
    queue.put("a")
    queue.get()
    ws.send("a")
    ws.ws.fail = True
    queue.put("b")
    queue.get()  # the flush fails here, inside the queue, without raising there
    with pytest.raises(BrokenPipeError):
        ws.send("b")


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
