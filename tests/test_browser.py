"""Two headless Chromium tabs chat through the browser demo (Debian's chromium, playwright-core)."""

import json
import os
import subprocess

import pytest
import requests

from routes import DEMO_CSP
from tests.support import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def demo_server(server_factory):
    return server_factory(DEMO_UI="true")


def test_demo_is_off_unless_enabled(api):
    assert api.get("/demo/index.html").status_code == 404


def test_demo_page_is_served_with_its_vendored_client(demo_server):
    page = requests.get(demo_server.url + "/demo", timeout=5)
    assert page.status_code == 200 and 'src="vendor/socket.io.min.js"' in page.text
    assert requests.get(demo_server.url + "/demo/vendor/socket.io.min.js", timeout=5).status_code == 200


def test_demo_responses_carry_a_strict_content_security_policy(demo_server):
    for path in ("/demo", "/demo/index.html", "/demo/demo.js", "/demo/demo.css", "/demo/vendor/socket.io.min.js"):
        response = requests.get(demo_server.url + path, timeout=5, allow_redirects=False)
        assert response.status_code in (200, 302), path
        policy = response.headers["Content-Security-Policy"]
        assert policy == DEMO_CSP, path
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        assert "unsafe" not in policy
        # The headers every response gets stay.
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    api = requests.get(demo_server.url + "/api/health", timeout=5)
    assert api.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_two_browser_tabs_chat(demo_server):
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "two-tabs.png"
    screenshot.unlink(missing_ok=True)
    env = {**os.environ, "URL": demo_server.url, "SCREENSHOT": str(screenshot)}
    result = subprocess.run(
        ["node", "browser.js"], cwd=ROOT / "tests" / "js", env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ok"] and "hello from bob's tab" in out["seen"]
    assert screenshot.stat().st_size > 1000
