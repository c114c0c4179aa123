"""A `message` ack on loopback takes milliseconds: the server sets TCP_NODELAY, so the ack that
follows a broadcast is not held ~40 ms by Nagle's algorithm waiting for the client's delayed ACK."""

import statistics
import time


def test_message_ack_round_trip_is_a_few_milliseconds(connect, make_user):
    alice, bob = make_user(), make_user()
    sender, listener = connect(alice), connect(bob)
    sender.call("join", {})
    listener.call("join", {})
    timings = []
    for i in range(40):
        started = time.perf_counter()
        ack = sender.call("message", {"messageBody": f"ping {i}"})
        timings.append((time.perf_counter() - started) * 1000)
        assert ack["ok"] is True
    median, worst = statistics.median(timings), max(timings)
    print(f"\nmessage ack round trip over websocket: median {median:.2f} ms, max {worst:.2f} ms")
    # Nagle plus delayed ACK would put every round trip at or above ~40 ms.
    assert median < 25, timings
