"""The browser's client (socket.io-client, run by node) against the live server."""

import json
import os
import subprocess

from tests.support import ROOT

JS = ROOT / "tests" / "js"


def test_socket_io_client_end_to_end(server, make_user):
    assert (JS / "node_modules" / "socket.io-client").exists(), "run `make test`, which installs tests/js"
    alice, bob = make_user(), make_user()
    env = {**os.environ, "URL": server.url, "TOKEN_A": alice.token, "TOKEN_B": bob.token}
    result = subprocess.run(["node", "e2e.js"], cwd=JS, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["refused"]["data"]["error"]["code"] == "unauthorized"
    assert out["joinA"]["ok"] is True and out["joinB"]["ok"] is True
    assert out["userJoined"] == {"room": out["joinA"]["room"], "userId": bob.id, "userName": bob.username}
    assert out["ack"]["ok"] is True and out["ack"]["message"]["clientId"] == "js-1"
    assert out["delivered"] == out["ack"]["message"]
    assert out["nullPayload"]["ok"] is False and out["nullPayload"]["error"]["code"] == "validation_error"
    assert out["stringPayload"]["error"]["code"] == "validation_error"
    assert out["transport"] == "websocket"
