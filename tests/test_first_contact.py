"""A newcomer's first steps: `.env.example` as it is, `GET /`, the start-up log, busy ports, the docs links."""

import json
import os
import re
import socket
import subprocess
import sys

import requests
from dotenv import dotenv_values

from model.embedded import free_port
from tests.support import ROOT, TEST_SECRET, Api, SocketClient, register


def test_the_env_example_serves_a_demo_that_connects(server_factory):
    settings = dotenv_values(ROOT / ".env.example")
    local = {"MONGODB_URI", "PORT", "HOST"}  # the test's own database and port
    node = server_factory(**{key: value for key, value in settings.items() if key not in local})
    assert Api(node.url).get("/demo/index.html").status_code == 200
    user = register(Api(node.url))
    client = SocketClient(node.url, user.token, transports=["polling"], headers={"Origin": node.url}).connect()
    try:
        assert client.call("join", {})["ok"] is True, "the page's own origin passes the handshake"
    finally:
        client.close()


def _serve(env, timeout=60):
    """`python server.py` with `env` over the test environment, as a newcomer's terminal would run it."""
    full = {**os.environ, "APP_ENV": "development", "JWT_SECRET_KEY": TEST_SECRET, "PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "server.py"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout
    )


def _last_line(result):
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_busy_port_is_one_line(mongo_uri):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _serve({"MONGODB_URI": mongo_uri, "HOST": "127.0.0.1", "PORT": str(port)})
    assert _last_line(result) == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use (another server runs there: stop it or set PORT)"
    )


def test_a_busy_embedded_database_port_is_refused_not_shared():
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a first `make run`'s database, say
        port = taken.getsockname()[1]
        result = _serve({"MONGODB_URI": "", "MONGO_URI": "", "EMBEDDED_DB_PORT": str(port)}, timeout=20)
    assert _last_line(result) == (
        f"EMBEDDED_DB_PORT {port} is in use (another `make run`?): stop that server, share its database with "
        f"MONGODB_URI=mongodb://127.0.0.1:{port}/chat, or set EMBEDDED_DB_PORT and EMBEDDED_DB_PATH to others"
    )


def test_the_root_points_to_the_demo_and_the_docs(server_factory, api):
    node = server_factory(DEMO_UI="true")
    root = requests.get(node.url + "/", timeout=5)
    assert root.status_code == 200
    links = root.json()["links"]
    assert links == {
        "demo": "/demo",
        "docs": "/api/docs",
        "openapi": "/api/openapi.json",
        "asyncapi": "/api/asyncapi.yaml",
        "health": "/api/health",
    }
    for path in links.values():
        assert requests.get(node.url + path, timeout=5).status_code == 200, path
    assert api.get("/").json()["links"]["demo"] is None, "no demo link where the demo is off"
    log = node.log()
    assert f"demo: {node.url}/demo" in log and f"API docs: {node.url}/api/docs" in log


def test_the_asyncapi_document_is_served_and_linked(api):
    served = api.get("/api/asyncapi.yaml")
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/yaml")
    assert served.text == (ROOT / "docs" / "asyncapi.yaml").read_text()
    description = api.get("/api/openapi.json").json()["info"]["description"]
    assert "(/api/asyncapi.yaml)" in description, "the docs page links the events"


def test_the_readme_quick_start_runs_as_pasted_twice(server):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README has a quick start block"
    script = block[1].replace("localhost:5000", f"127.0.0.1:{server.port}")
    assert "<accessToken>" not in script, "the token is captured, not left to the reader"
    for run in range(2):  # pasted again, it still works (the accounts and the room exist by then)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        history = json.loads(result.stdout.strip().splitlines()[-1])
        assert [m["messageBody"] for m in history["messages"]][:1] == ["hi bob"], (run, result.stdout)
