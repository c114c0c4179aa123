"""`python bench/metrics_cost.py [--messages N]`: what the metrics add to one stored and delivered message.

Under eventlet's monkey patching, as `python server.py` runs, it times N rounds of the metric
updates one message costs on the send path (docs/PERFORMANCE.md, "Metrics"):
- `do_send_message`: the stored-messages counter and the send-latency histogram;
- the broadcast: the deliveries counter and the fan-out histogram (once per emit, whatever its size);
- the database listener: two command observations (the position `$inc` and the insert; a group
  commit shares both among the messages it stores, so this is the worst case).
It prints the cost per message in microseconds, the best of five runs.
"""

if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import metrics

RUNS = 5


def one_message(timer, allocate, insert):
    """The metric updates of one message: stored, timed, delivered to two sockets, two database commands."""
    started = time.perf_counter()
    metrics.message_stored(started)
    metrics.delivered("message", 2)
    timer.succeeded(allocate)
    timer.succeeded(insert)


def run(messages):
    timer = metrics.CommandTimer()
    allocate = SimpleNamespace(command_name="findAndModify", duration_micros=800)
    insert = SimpleNamespace(command_name="insert", duration_micros=2500)
    started = time.perf_counter()
    for _ in range(messages):
        one_message(timer, allocate, insert)
    return (time.perf_counter() - started) / messages * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python bench/metrics_cost.py")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args(argv)
    run(args.messages)  # warm up: the labelled children are created once
    best = min(run(args.messages) for _ in range(RUNS))
    print(f"{args.messages} messages, best of {RUNS} runs: per message: {best:.2f} µs")


if __name__ == "__main__":
    main()
