"""Configuration: production refuses to start without its secrets; MONGO_URI is an alias."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
import requests

from model import embedded
from tests.support import ROOT, TEST_SECRET, Api, LiveServer, register


def _start(env, timeout=30):
    clean = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGO_URI", "JWT_SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "server.py"],
        cwd=ROOT,
        env={**clean, "PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"JWT_SECRET_KEY": TEST_SECRET}, "MONGODB_URI"),
        ({"MONGODB_URI": "mongodb://127.0.0.1:1/x"}, "JWT_SECRET_KEY"),
        ({}, "JWT_SECRET_KEY, MONGODB_URI"),
    ],
)
def test_production_refuses_to_start_without_its_secrets(env, missing):
    result = _start({"APP_ENV": "production", **env})
    assert result.returncode != 0
    assert missing in result.stderr


def test_production_refuses_a_wildcard_origin():
    env = {"APP_ENV": "production", "JWT_SECRET_KEY": TEST_SECRET, "MONGODB_URI": "mongodb://x/y", "CORS_ORIGINS": "*"}
    result = _start(env)
    assert result.returncode != 0 and "CORS_ORIGINS" in result.stderr


def test_mongo_uri_is_accepted_as_an_alias(server_factory, mongo_uri):
    server = server_factory(MONGODB_URI="", MONGO_URI=mongo_uri)
    assert mongo_uri.split("/")[2] in server.log()


def test_create_admin_command(api, make_user, server):
    user = make_user()
    env = {**os.environ, "MONGODB_URI": server.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET}
    result = subprocess.run(
        [sys.executable, "-m", "jobs.create_admin", user.username], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert api.get("/api/users/me", user.token).json()["role"] == "admin"
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.create_admin", "no-such-user"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no-such-user" in missing.stderr


def test_json_logs(server_factory):
    server = server_factory(LOG_FORMAT="json")
    requests.get(server.url + "/api/health", headers={"X-Request-ID": "json-probe"}, timeout=5)
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    probe = [r for r in records if r.get("request_id") == "json-probe"]
    assert probe and probe[0]["status"] == 200 and probe[0]["path"] == "/api/health" and "duration_ms" in probe[0]


def test_general_is_created_once_when_servers_start_together(server_factory, mongo_uri, tmp_path):
    uri = mongo_uri.rsplit("/", 1)[0] + "/race_general"
    servers = [LiveServer(uri, tmp_path) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(LiveServer.start, servers))
        with pymongo.MongoClient(uri) as client:
            assert client.get_default_database().rooms.count_documents({"name_key": "general"}) == 1
            client.drop_database("race_general")
    finally:
        for server in servers:
            server.kill()


def test_embedded_database_keeps_its_data_across_a_restart(tmp_path):
    env = {"MONGODB_URI": "", "EMBEDDED_DB_PATH": str(tmp_path / "db")}
    first = LiveServer("", tmp_path, **env).start()
    try:
        assert "using the embedded SecantusDB store" in first.log()
        register(Api(first.url), "survivor")
    finally:
        first.stop()
    second = LiveServer("", tmp_path, **env).start()
    try:
        login = Api(second.url).post("/api/auth/login", json={"username": "survivor", "password": "password-123"})
        assert login.status_code == 200
    finally:
        second.kill()


def _gone(pid, timeout):
    """Whether process `pid` has ended (or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_an_embedded_daemon_goes_with_the_process_that_started_it_even_if_it_cannot_stop():
    """SecantusDB's SIGTERM handler can hang for good when another signal comes while it runs (two SIGTERMs back to
    back left half the daemons running): a daemon goes with the process that started it (a server killed during its
    shutdown, say) whatever state it is in, and a Ctrl-C in the server's terminal (its process group) reaches the
    daemon only through the server's one SIGTERM."""
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from model.embedded import start_daemon; "
        "print(start_daemon()[0].pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(ROOT)], stdout=subprocess.PIPE, text=True)
    daemon = int(parent.stdout.readline())
    parent.stdout.close()
    assert os.getpgid(daemon) != os.getpgid(parent.pid)
    os.kill(daemon, signal.SIGSTOP)  # stands for a daemon that cannot handle a signal now
    parent.kill()
    parent.wait()
    if not _gone(daemon, 10):
        os.kill(daemon, signal.SIGKILL)
        raise AssertionError("the daemon outlived the process that started it")


@pytest.mark.skipif(bool(os.environ.get("TEST_MONGODB_URI")), reason="the database is not our embedded daemon")
def test_embedded_database_uris_ask_for_plain_writes(mongo_uri):
    # SecantusDB walks its whole record of retryable writes on every write (see model/embedded.py).
    for uri in (mongo_uri, embedded.with_database(mongo_uri, "other")):
        parsed = pymongo.uri_parser.parse_uri(uri)
        assert parsed["options"]["retryWrites"] is False
    assert pymongo.uri_parser.parse_uri(embedded.with_database(mongo_uri, "other"))["database"] == "other"


@pytest.mark.skipif(bool(os.environ.get("TEST_MONGODB_URI")), reason="the database is not our embedded daemon")
def test_the_embedded_database_is_standalone_and_keeps_no_oplog(db):
    # A one-node replica set would keep an oplog entry of every write (see model/embedded.py).
    db.oplog_probe.insert_one({"written": True})
    assert db.client.admin.command("hello").get("setName") is None
    assert db.client.local.oplog.rs.count_documents({}) == 0


@pytest.mark.parametrize("mode", ["gevent", "threading"])
def test_the_async_modes_measured_against_eventlet_serve_the_socket_contract(server_factory, joined_pair, mode):
    node = server_factory(script="bench/serve_other.py", ASYNC_MODE=mode)
    assert f"serving ({mode})" in node.log()
    a, b = joined_pair(urls=(node.url, node.url)).sockets
    ack = a.call("message", {"messageBody": f"over {mode}", "clientId": "c1"})
    assert ack["ok"] is True
    assert b.wait_for("message")["id"] == ack["message"]["id"]
    assert a.call("message", {"messageBody": f"over {mode}", "clientId": "c1"})["message"] == ack["message"]


def _python(code, env, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_importing_the_server_builds_no_app():
    # Production without its secrets would refuse to build: importing must not try.
    result = _python("import server, jobs", {"APP_ENV": "production", "JWT_SECRET_KEY": "", "MONGODB_URI": ""})
    assert result.returncode == 0, result.stderr


def test_settings_are_read_when_the_app_is_built_with_overrides(mongo_uri):
    code = (
        "import os, server; os.environ['ARCHIVE_AFTER_DAYS'] = '7'; "
        "c = server.create_app(ASYNC_MODE='threading').config; "
        "print(c['ARCHIVE_AFTER_DAYS'], c['ASYNC_MODE'], c['ARCHIVE_LEASE_SECONDS'], c['ARGON2_MEMORY_COST'])"
    )
    env = {"APP_ENV": "testing", "MONGODB_URI": mongo_uri, "ASYNC_MODE": "", "ARGON2_MEMORY_COST": ""}
    result = _python(code, env)
    assert result.stdout.split() == ["7", "threading", "300", "8192"], result.stderr
    unknown = _python("import server; server.create_app(ASYNC_MOD='threading')", env)
    assert "config.ConfigError: unknown settings: ASYNC_MOD" in unknown.stderr


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "server.py"], [sys.executable, "-m", "jobs.create_admin", "nobody"]],
    ids=["server", "job"],
)
def test_a_refused_setting_is_one_line_and_exit_1(command, mongo_uri):
    env = {**os.environ, "MONGODB_URI": mongo_uri, "JWT_SECRET_KEY": TEST_SECRET, "DB_TIMEOUT_MS": "soon"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "DB_TIMEOUT_MS must be a whole number, not 'soon'\n"


def test_server_py_serves_eventlet_only(mongo_uri):
    result = _start({"ASYNC_MODE": "gevent", "JWT_SECRET_KEY": TEST_SECRET, "MONGODB_URI": mongo_uri})
    assert result.returncode == 1 and "bench/serve_other.py" in result.stderr
