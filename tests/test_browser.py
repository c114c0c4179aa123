"""Two headless Chromium tabs chat through the browser demo (Debian's chromium, playwright-core)."""

import json
import os
import subprocess

import pytest
import requests

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
