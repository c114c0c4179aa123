"""The Procfile under honcho, as `make cluster` runs it: the virtualenv's python, several processes on one
database; several processes that would each get an embedded database of their own are refused."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config import ConfigError, load_config
from tests.support import ROOT, TEST_SECRET

VENV = Path(sys.executable).parent.parent


def _free_pair():
    """A port whose next one is free too (honcho gives web.1 PORT and web.2 PORT + 1).

    Drawn below the kernel's ephemeral range: the ports other tests' servers and clients are given
    (a bind to port 0, a connect) come from that range, and one of them could take PORT + 1 between
    this check and web.2's start.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        port = random.randrange(low // 2, low - 1)
        try:
            with socket.create_server(("127.0.0.1", port)), socket.create_server(("127.0.0.1", port + 1)):
                return port
        except OSError:
            continue
    raise RuntimeError("no two free ports in a row")


def _environment(**extra):
    """The test's environment without the virtualenv on PATH: `make cluster` must put it there itself."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != VENV / "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MONGODB_URI", "MONGO_URI", "REDIS_URL")}
    base = {"APP_ENV": "testing", "HOST": "127.0.0.1", "JWT_SECRET_KEY": TEST_SECRET, "RATE_LIMITS_ENABLED": "false"}
    return {**env, **base, "PATH": path, "PYTHONUNBUFFERED": "1", **extra}


def _up(url, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/api/health/ready", timeout=1).status_code == 200:
                return True
        except requests.ConnectionError:
            time.sleep(0.2)
    return False


def test_make_cluster_serves_two_processes_on_one_database(mongo_uri, tmp_path):
    port = _free_pair()
    log_path = tmp_path / "cluster.log"
    # -o: the virtualenv of this run counts as installed (make must not reinstall it).
    command = ["make", "-o", str(VENV / ".installed"), "cluster", f"VENV={VENV}", "WEB=2"]
    with open(log_path, "wb") as log:
        env = _environment(MONGODB_URI=mongo_uri, PORT=str(port))
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        first, second = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
        assert _up(first) and _up(second), log_path.read_text()
        account = {"username": "honcho-user", "password": "password-123"}
        registered = requests.post(first + "/api/auth/register", json=account, timeout=10)
        assert registered.status_code == 201, registered.text
        logged_in = requests.post(second + "/api/auth/login", json=account, timeout=10)
        assert logged_in.status_code == 200 and logged_in.json()["user"]["id"] == registered.json()["user"]["id"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    output = log_path.read_text()
    assert "web.1" in output and "web.2" in output and "ModuleNotFoundError" not in output


def test_honcho_refuses_several_processes_on_separate_embedded_databases(tmp_path):
    env = _environment(PORT=str(_free_pair()), PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    command = [str(VENV / "bin" / "honcho"), "-f", "Procfile", "start", "-c", "web=2"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode != 0
    assert (
        "web.2 is one of several processes (HONCHO_PROCESS_NAME) and MONGODB_URI is unset: each would get an "
        "embedded database of its own. Set MONGODB_URI to one they share" in result.stdout
    ), result.stdout


def test_redis_with_an_in_memory_database_is_refused(tmp_path):
    env = _environment(PORT="0", REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr == (
        "REDIS_URL is set, so this is one of several processes, and MONGODB_URI is unset: each would get an "
        "in-memory database of its own. Set MONGODB_URI to one they share (a running `make run` serves "
        "mongodb://127.0.0.1:27027/chat)\n"
    )


@pytest.mark.parametrize("name, refused", [("web.1", False), ("web.2", True), ("worker.3", True), ("", False)])
def test_only_the_first_process_of_a_kind_may_own_an_embedded_database(monkeypatch, name, refused):
    for variable in ("MONGODB_URI", "MONGO_URI", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HONCHO_PROCESS_NAME", name)
    monkeypatch.setenv("EMBEDDED_DB_PATH", "data/db")
    if refused:
        with pytest.raises(ConfigError, match="MONGODB_URI is unset"):
            load_config("development")
    else:
        assert load_config("development")["MONGODB_URI"] is None
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.internal/chat")
    assert load_config("development")["MONGODB_URI"] == "mongodb://db.internal/chat", "a shared database is fine"
