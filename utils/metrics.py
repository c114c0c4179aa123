"""What this process counts, for `GET /metrics` (prometheus_client, one registry per process).

The instruments here are updated on the hot paths, so each update is one counter add or one
histogram observation (prometheus_client's own small lock, no I/O): the send path adds one
of each per stored message, a broadcast one of each per emit whatever its fan-out. What can
be read when Prometheus asks (sockets, queue state, the archive job) is computed at scrape
time instead (`services/metrics.py`). Every sample gets the process's `process` label there.
"""

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from pymongo import monitoring

from utils import outage

# The `_created` series double every counter's lines and tell Prometheus nothing it needs.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
# 1 ms to 10 s: a group-committed insert, a Redis round trip, a database command.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FANOUT_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

MESSAGES_STORED = Counter(
    "chat_messages_stored", "Messages stored by this process (a retried clientId is not counted).", registry=REGISTRY
)
SEND_SECONDS = Histogram(
    "chat_message_send_seconds",
    "Seconds from storing a message to its ack being ready: the journaled, group-committed append.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "chat_socket_deliveries",
    "Events handed to this process's sockets, one per recipient socket, by event name.",
    ["event"],
    registry=REGISTRY,
)
FANOUT = Histogram(
    "chat_broadcast_fanout_sockets",
    "Sockets of this process that one emit reached (emits that reach none here are not observed).",
    buckets=FANOUT_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "chat_queue_publish_seconds",
    "Seconds to publish one batch of broadcasts to the Redis message queue (one pipeline).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
MESSAGES_HELD = Counter(
    "chat_messages_held",
    "Room messages held back until an earlier one, stored through another process, was delivered or given up.",
    registry=REGISTRY,
)
ORDER_READS = Counter(
    "chat_order_reads",
    "Reads of a room's positions made because a message held for an earlier one waited ORDER_HOLD_MS.",
    registry=REGISTRY,
)
MESSAGES_READ_FOR_ORDER = Counter(
    "chat_messages_read_for_order",
    "Messages whose broadcast was late or lost, read from the database to deliver a room's messages in order.",
    registry=REGISTRY,
)
DB_SECONDS = Histogram(
    "chat_db_command_seconds",
    "Database command round trips as the driver measured them, by command name.",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DB_FAILURES = Counter(
    "chat_db_command_failures", "Database commands that failed, by command name.", ["command"], registry=REGISTRY
)
RATE_LIMITED = Counter(
    "chat_rate_limit_refusals",
    "Requests and socket events refused for being over a rate limit, by action.",
    ["action"],
    registry=REGISTRY,
)

_deliveries = {}  # event -> DELIVERIES child: labels() takes a lock and builds a tuple, a dict lookup does not
_db_seconds, _db_failures = {}, {}


def delivered(event: str, sockets: int) -> None:
    """Count one emit that reached `sockets` sockets of this process."""
    if sockets <= 0:
        return
    child = _deliveries.get(event)
    if child is None:
        child = _deliveries[event] = DELIVERIES.labels(event)
    child.inc(sockets)
    FANOUT.observe(sockets)


def message_stored(started: float) -> None:
    """Count a stored message whose append began at `started` (time.perf_counter())."""
    MESSAGES_STORED.inc()
    SEND_SECONDS.observe(time.perf_counter() - started)


def refused(action: str) -> None:
    """Count one refusal by a rate limit."""
    RATE_LIMITED.labels(action).inc()


def _child(cache, metric, command):
    child = cache.get(command)
    if child is None:
        child = cache[command] = metric.labels(command)
    return child


class CommandTimer(monitoring.CommandListener):
    """pymongo's command events, into `chat_db_command_seconds`: the driver measures, we observe."""

    def started(self, event):
        pass

    def succeeded(self, event):
        _child(_db_seconds, DB_SECONDS, event.command_name).observe(event.duration_micros / 1e6)
        outage.database.recovered()  # logs only when it was down

    def failed(self, event):
        _child(_db_seconds, DB_SECONDS, event.command_name).observe(event.duration_micros / 1e6)
        _child(_db_failures, DB_FAILURES, event.command_name).inc()
