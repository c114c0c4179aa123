"""`GET /metrics`: this process's registry, the values read at scrape time, and who may read it.

Each process serves its own registry (no shared multiprocess directory): Prometheus scrapes
every process, and every sample carries a constant `process` label (METRICS_PROCESS: the
dyno name on Heroku, else host:port), beside prometheus_client's default process collector
(`process_*`: CPU, memory, open files, start time) and platform collector (`python_info`).
Sum over `process` for the service's totals.
"""

import hmac
import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from model.job_run import last_run
from services import presence
from utils import metrics, transport
from utils.extensions import socketio

log = logging.getLogger(__name__)
ARCHIVE = "archive"  # the archive job's name in `job_runs` (services/archive.py's lease name)


class ScrapeTime:
    """Values read when Prometheus asks, so they cost nothing between scrapes: sockets, the message
    queue, and the archive job's last run (one read of `job_runs`; left out while the database fails)."""

    def collect(self):
        yield GaugeMetricFamily("chat_sockets_connected", "Authenticated sockets of this process.", presence.count())
        status = transport.queue_status(socketio.server) if socketio.server else None
        if status is not None:
            up, backlog = status
            yield GaugeMetricFamily(
                "chat_queue_up",
                "1 while this process is subscribed to the Redis message queue and publishing to it, else 0.",
                int(up),
            )
            yield GaugeMetricFamily(
                "chat_queue_backlog_messages", "Broadcasts waiting to be published to the message queue.", backlog
            )
        yield from self._archive()

    def _archive(self):
        try:
            run = last_run(ARCHIVE)
        except Exception:  # a scrape still answers while the database is down
            log.warning("metrics: could not read the archive job's last run", exc_info=True)
            return
        job = "the archive job's last"
        ended, succeeded = _unix(run, "last_run_at"), _unix(run, "last_success_at")
        values = (
            ("last_run_timestamp_seconds", f"Unix time {job} run ended (0: never).", ended),
            ("last_run_success", f"1 when {job} run succeeded, else 0.", int(bool(run and run.last_ok))),
            ("last_success_timestamp_seconds", f"Unix time {job} successful run ended (0: never).", succeeded),
            ("last_moved", f"Messages {job} successful run moved.", run.last_moved if run else 0),
            ("last_duration_seconds", f"Seconds {job} successful run took.", run.last_seconds if run else 0),
        )
        for name, documentation, value in values:
            yield GaugeMetricFamily(f"chat_archive_{name}", documentation, value)


def _unix(run, field):
    moment: datetime | None = getattr(run, field, None) if run else None
    return moment.timestamp() if moment else 0


class Labelled:
    """Collectors whose every sample gets `labels` (constant labels, added at scrape time)."""

    def __init__(self, labels, *collectors):
        self.labels, self.collectors = labels, collectors

    def collect(self):
        for collector in self.collectors:
            for family in collector.collect():
                family.samples = [sample._replace(labels={**sample.labels, **self.labels}) for sample in family.samples]
                yield family


def registry(process: str) -> CollectorRegistry:
    """The registry this process serves: its instruments, scrape-time values and process metrics, labelled `process`."""
    served = CollectorRegistry(auto_describe=False)
    served.register(
        Labelled(
            {"process": process},
            metrics.REGISTRY,
            ScrapeTime(),
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
        )
    )
    return served


def on_main_port(config) -> bool:
    """Whether GET /metrics is served on the server's own port: not in production without METRICS_TOKEN."""
    return bool(config["METRICS_TOKEN"]) or config["APP_ENV"] != "production"


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the bearer METRICS_TOKEN (always, when no token is set)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def exposition(served: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """(body, content type) of a scrape: the Prometheus text format, or OpenMetrics when the scraper asks."""
    encoder, content_type = choose_encoder(accept)
    return encoder(served), content_type
