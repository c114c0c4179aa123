"""GET /metrics against live servers: scrapes parsed with prometheus_client's own parser."""

import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from model.embedded import free_port
from tests.support import ROOT, TEST_SECRET, Api, RedisServer, assert_error, register


class Scrape(dict):
    """{(sample name, ((label, value), ...)): value} of one scrape, `process` label checked and dropped."""

    def __init__(self, text, process):
        super().__init__()
        self.families = {}
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family
            for sample in family.samples:
                labels = dict(sample.labels)
                assert labels.pop("process") == process, sample
                self[sample.name, tuple(sorted(labels.items()))] = sample.value

    def value(self, name, **labels):
        return self.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name):
        """The sum of a sample name over all its label values."""
        return sum(value for (sample, _), value in self.items() if sample == name)


def scrape(url, token=None, process=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text, process or f"{socket.gethostname()}:{url.rsplit(':', 1)[1]}")


@pytest.fixture(scope="module")
def node(server_factory):
    """A server of the module's own: nothing else's sockets or broadcasts move its counters."""
    return server_factory()


@pytest.fixture
def room_pair(node, joined_pair):
    """Two users with a socket each in a new public room on `node`: (api, users, sockets, room id)."""
    api = Api(node.url)
    owner, guest = register(api), register(api)
    room = api.post("/api/rooms", owner.token, json={"name": f"metrics-{owner.username}"}).json()["id"]
    assert api.post(f"/api/rooms/{room}/join", guest.token).status_code == 200
    pair = joined_pair((owner, guest), room, urls=(node.url, node.url))
    return api, pair.users, pair.sockets, room


def test_a_scrape_is_the_prometheus_text_format_with_help_and_a_process_label(node, db):
    metrics = scrape(node.url)
    ours = {name: family for name, family in metrics.families.items() if name.startswith("chat_")}
    expected = {
        "chat_messages_stored": "counter",
        "chat_message_send_seconds": "histogram",
        "chat_socket_deliveries": "counter",
        "chat_broadcast_fanout_sockets": "histogram",
        "chat_db_command_seconds": "histogram",
        "chat_rate_limit_refusals": "counter",
        "chat_sockets_connected": "gauge",
        "chat_archive_last_success_timestamp_seconds": "gauge",
        "chat_archive_last_moved": "gauge",
        "chat_archive_last_run_success": "gauge",
    }
    assert {name: ours[name].type for name in expected if name in ours} == expected
    assert all(family.documentation for family in ours.values())
    assert "process_resident_memory_bytes" in metrics.families  # the default process collector
    assert "chat_queue_up" not in metrics.families  # no message queue without REDIS_URL
    assert metrics.total("chat_db_command_seconds_count") > 0  # the start-up's commands at least


def test_socket_and_rest_sends_move_the_counters(room_pair):
    api, (owner, _guest), (a, b), room = room_pair
    before = scrape(api.url)
    assert before.value("chat_sockets_connected") == 2
    assert a.call("message", {"room": room, "messageBody": "over the socket"})["ok"] is True
    assert api.post("/api/send", owner.token, json={"room": room, "messageBody": "over REST"}).status_code == 201
    assert a.call("typing", {"room": room, "typing": True})["ok"] is True
    for listener in (a, b):
        listener.wait_for_count("message", 2)
    b.wait_for("typing")
    after = scrape(api.url)

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("chat_messages_stored_total") == 2
    assert moved("chat_message_send_seconds_count") == 2
    assert 0 < moved("chat_message_send_seconds_sum") < 10
    # Two messages to two sockets; typing goes to everyone but its sender.
    assert moved("chat_socket_deliveries_total", event="message") == 4
    assert moved("chat_socket_deliveries_total", event="typing") == 1
    assert moved("chat_broadcast_fanout_sockets_count") == 3
    assert moved("chat_broadcast_fanout_sockets_bucket", le="2.0") == 3
    assert moved("chat_broadcast_fanout_sockets_bucket", le="1.0") == 1
    assert moved("chat_db_command_seconds_count", command="insert") >= 1  # two sends may share one group commit
    assert after.total("chat_db_command_seconds_count") > before.total("chat_db_command_seconds_count")


def test_the_sockets_gauge_follows_disconnects(room_pair):
    api, _, (a, _b), _ = room_pair
    assert scrape(api.url).value("chat_sockets_connected") == 2
    a.close()
    deadline = time.monotonic() + 5
    while scrape(api.url).value("chat_sockets_connected") != 1:
        assert time.monotonic() < deadline, "the gauge did not drop to 1"
        time.sleep(0.05)


def test_metrics_token_is_required_when_set(server_factory, db):
    token = "metrics-token-0123456789"
    url = server_factory(METRICS_TOKEN=token).url
    assert_error(requests.get(url + "/metrics", timeout=10), 401, "unauthorized")
    wrong = requests.get(url + "/metrics", headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert_error(wrong, 401, "unauthorized")
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert "chat_messages_stored_total" in {name for name, _ in scrape(url, token)}


def test_production_without_a_token_serves_metrics_on_the_internal_port_only(server_factory, db):
    port = free_port()
    node = server_factory(APP_ENV="production", METRICS_PORT=port, METRICS_PROCESS="web.1")
    assert_error(requests.get(node.url + "/metrics", timeout=10), 404, "not_found")
    internal = f"http://127.0.0.1:{port}"
    metrics = scrape(internal, process="web.1")
    assert "chat_sockets_connected" in metrics.families
    assert requests.get(internal + "/api/health", timeout=10).status_code == 404  # that port serves /metrics alone
    assert f"metrics on http://127.0.0.1:{port}/metrics" in node.log()


def test_a_busy_metrics_port_is_a_one_line_refusal(server_factory, mongo_uri):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        env = {**os.environ, "APP_ENV": "testing", "MONGODB_URI": mongo_uri, "PORT": str(free_port())}
        env |= {"METRICS_PORT": str(port), "JWT_SECRET_KEY": TEST_SECRET}
        done = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"METRICS_PORT {port} on 127.0.0.1 is in use"


def test_rate_limit_refusals_are_counted_by_action(server_factory, db):
    url = server_factory(RATE_LIMITS_ENABLED="true", MESSAGE_RATE_LIMIT="2/minute", LOGIN_RATE_LIMIT="1/minute").url
    api = Api(url)
    user = register(api)
    before = scrape(url)
    statuses = [api.post("/api/send", user.token, json={"messageBody": f"m{i}"}).status_code for i in range(3)]
    assert statuses == [201, 201, 429]
    logins = [
        api.post("/api/auth/login", json={"username": user.username, "password": "wrong-password"}).status_code
        for _ in range(2)
    ]
    assert logins == [401, 429]
    after = scrape(url)
    for action in ("message", "login"):
        moved = after.value("chat_rate_limit_refusals_total", action=action)
        assert moved - before.value("chat_rate_limit_refusals_total", action=action) == 1, action
    assert after.value("chat_messages_stored_total") - before.value("chat_messages_stored_total") == 2


def test_the_archive_jobs_last_run_is_exposed(node, db):
    api = Api(node.url)
    user = register(api)
    assert scrape(node.url).value("chat_archive_last_success_timestamp_seconds") == 0  # never ran
    for i in range(3):
        assert api.post("/api/send", user.token, json={"messageBody": f"old {i}"}).status_code == 201
    env = {**os.environ, "MONGODB_URI": node.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET}
    started = time.time()
    job = [sys.executable, "-m", "jobs.archive", "--older-than-days", "0"]
    done = subprocess.run(job, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    metrics = scrape(node.url)
    assert metrics.value("chat_archive_last_moved") == 3
    assert metrics.value("chat_archive_last_run_success") == 1
    assert started - 1 <= metrics.value("chat_archive_last_success_timestamp_seconds") <= time.time() + 1
    assert metrics.value("chat_archive_last_run_timestamp_seconds") == metrics.value(
        "chat_archive_last_success_timestamp_seconds"
    )


def test_a_failed_archive_run_keeps_the_last_success(node, db):
    env = {**os.environ, "MONGODB_URI": node.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET}
    job = [sys.executable, "-m", "jobs.archive", "--older-than-days", "0"]
    assert subprocess.run(job, cwd=ROOT, env=env, capture_output=True, timeout=120).returncode == 0
    succeeded = scrape(node.url).value("chat_archive_last_success_timestamp_seconds")
    fail = "import services.archive as a\ndef boom(*args): raise RuntimeError('disk on fire')\na._archive_room = boom\n"
    code = f"{fail}import sys\nfrom jobs.archive import main\nsys.exit(main(sys.argv[1:]))"
    failed = subprocess.run([sys.executable, "-c", code, *job[3:]], cwd=ROOT, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "disk on fire" in failed.stderr
    metrics = scrape(node.url)
    assert metrics.value("chat_archive_last_run_success") == 0
    assert metrics.value("chat_archive_last_success_timestamp_seconds") == succeeded
    assert metrics.value("chat_archive_last_run_timestamp_seconds") > succeeded


def wait_for_value(url, name, wanted, timeout=10):
    """Scrape until sample `name` has the value `wanted`; return that scrape."""
    deadline = time.monotonic() + timeout
    while (metrics := scrape(url)).value(name) != wanted:
        assert time.monotonic() < deadline, f"{name} is {metrics.value(name)}, not {wanted}"
        time.sleep(0.05)
    return metrics


def test_queue_status_publish_latency_and_backlog(server_factory, tmp_path, db):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        url = server_factory(REDIS_URL=redis.url).url
        wait_for_value(url, "chat_queue_up", 1)  # subscribed from the start, before any socket connects
        api = Api(url)
        user = register(api)
        assert api.post("/api/send", user.token, json={"messageBody": "through the queue"}).status_code == 201
        metrics = wait_for_value(url, "chat_queue_publish_seconds_count", 1)
        assert metrics.value("chat_queue_backlog_messages") == 0
        redis.stop()
        wait_for_value(url, "chat_queue_up", 0)
        assert api.post("/api/send", user.token, json={"messageBody": "while it is down"}).status_code == 201
        assert scrape(url).value("chat_queue_backlog_messages") >= 1  # waits for Redis, the send did not
        redis.start()
        wait_for_value(url, "chat_queue_up", 1)
        wait_for_value(url, "chat_queue_backlog_messages", 0)
    finally:
        redis.stop()


def test_the_per_message_cost_of_the_metrics_is_microseconds():
    """The send path's metric updates (bench/metrics_cost.py measures and explains them) stay far below a store."""
    done = subprocess.run(
        [sys.executable, "bench/metrics_cost.py", "--messages", "2000"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    per_message = float(done.stdout.split("per message: ")[1].split()[0])
    assert per_message < 200, done.stdout  # microseconds; a journaled insert is milliseconds
