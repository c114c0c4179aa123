"""The browser demo, used as a person would: headless Chromium (Debian's) driven by playwright-core.

Each test runs one scenario of tests/js/browser.js against a server with DEMO_UI on, fails on any
Content-Security-Policy violation or uncaught error in the page, and keeps its screenshots in
tests/artifacts/.
"""

import json
import os
import subprocess
import time
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import requests
from bson import ObjectId

from routes import DEMO_CSP
from tests.support import ROOT, TEST_SECRET, Api, register
from utils.timefmt import utcnow

ARTIFACTS = ROOT / "tests" / "artifacts"
DEMO = ROOT / "demo"


@pytest.fixture(scope="module")
def demo_server(server_factory):
    return server_factory(DEMO_UI="true")


def drive(server, scenario, **env):
    """Run one scenario; return its JSON result after checking it passed cleanly."""
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.time()
    result = subprocess.run(
        ["node", "browser.js"],
        cwd=ROOT / "tests" / "js",
        env={
            **os.environ,
            "URL": server.url,
            "SCENARIO": scenario,
            "ARTIFACTS": str(ARTIFACTS),
            "JWT_SECRET": TEST_SECRET,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = result.stdout.strip().splitlines()
    out = json.loads(lines[-1]) if lines else {}
    assert result.returncode == 0 and out.get("ok"), out.get("error") or result.stdout + result.stderr
    assert out["csp"] == [], "Content-Security-Policy violations"
    assert out["pageErrors"] == [], "uncaught errors in the page"
    for name in out["screenshots"]:
        shot = ARTIFACTS / name
        assert shot.stat().st_size > 1000 and shot.stat().st_mtime >= started - 1, name
    return out


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


class _Inline(HTMLParser):
    """Collects what a strict CSP would block in a page: inline scripts, handlers and styles."""

    def __init__(self):
        super().__init__()
        self.found, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self.found += [f"<{tag} {name}>" for name in names if name.startswith("on") or name == "style"]
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            self.scripts.append(names.get("src"))
            self._in_script = True

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append("inline <script>")


def test_demo_page_has_no_inline_script_handler_or_style():
    parser = _Inline()
    parser.feed((DEMO / "index.html").read_text())
    assert parser.found == []
    assert parser.scripts == ["vendor/socket.io.min.js", "demo.js"]
    script = (DEMO / "demo.js").read_text()
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", '"style"', "cdn"):
        assert risky not in script, risky


def test_two_browser_tabs_chat(demo_server, db):
    """Sign-up (one of them by keyboard only), typing, timestamps, edit, delete, rooms, a readonly member."""
    out = drive(demo_server, "chat")
    assert out["seen"] == ["This message was deleted.", "hi bob, welcome"]


def test_history_pages_back_on_scroll_up(demo_server, db):
    """120 messages, 60 of them from two days ago: scrolling up loads all of them once, in order. A message that
    arrives while the reader is up there raises the room's badge until they go down to it, and is then read."""
    api = Api(demo_server.url)
    seeder = register(api, "seeder")
    room = api.post("/api/rooms", seeder.token, json={"name": "history"}).json()
    for n in range(120):
        sent = api.post("/api/send", seeder.token, json={"room": room["id"], "messageBody": f"seed {n:03d}"})
        assert sent.status_code == 201, sent.text
    two_days_ago = utcnow() - timedelta(days=2)
    older = db.messages.find({"room": ObjectId(room["id"])}, sort=[("seq", 1)], limit=60)
    for n, doc in enumerate(older):
        db.messages.update_one({"_id": doc["_id"]}, {"$set": {"time_stamp": two_days_ago + timedelta(seconds=n)}})
    out = drive(demo_server, "history", HISTORY_ROOM="history")
    assert out["count"] == 120 and out["days"][-1] == "Today"


def test_reconnect_and_resync_miss_nothing(demo_server, db):
    """Offline, then back: what was sent meanwhile appears once, in order; so after `resync`."""
    out = drive(demo_server, "reconnect")
    assert out["seen"][-3:] == ["written while offline", "lost 1", "lost 2"]


def test_session_survives_reloads_and_expired_tokens(demo_server, db):
    """Reload, expired access tokens (REST and socket) answered by one refresh each, logout, logout elsewhere."""
    out = drive(demo_server, "session")
    assert out["refreshes"] == 4  # three that worked, and the one refused after the logout elsewhere


def test_demo_at_phone_width(demo_server, db):
    out = drive(demo_server, "phone")
    assert out["widths"]["scroll"] <= out["widths"]["inner"]


def test_a_dm_between_two_tabs_and_its_unread_badge(demo_server, db):
    """Found by name, opened, shown to the other tab by room_added. Its badge counts each message live (notification)
    and from the server in a second tab; reading it in one tab clears both (read, read_receipt) and shows the sender
    "Seen by". A plain message in a room the socket has not joined shows after Refresh, not highlighted."""
    out = drive(demo_server, "dm")
    assert out["seen"][-1] == "yes, what's up?"


def test_a_mention_and_a_thread(demo_server, db):
    """A room added live, its "@" badge (live, then from the server after a reload), the mention highlighted; replies
    both ways, counts kept live, 62 replies paged."""
    out = drive(demo_server, "thread")
    assert out["replies"] == ["On it, comments by noon.", "Thanks!"]


def test_reactions_and_pins_between_two_tabs(demo_server, db):
    """Reactions added from the palette (mouse and keyboard) and chips, taken back, seen by the other tab; the owner
    pins, the pins list follows."""
    out = drive(demo_server, "reactions")
    assert out["reactions"] == [{"emoji": "👍", "count": 1, "mine": True}, {"emoji": "🎉", "count": 1, "mine": True}]


def test_attachments_upload_at_once_and_show_as_thumbnails(demo_server, db):
    """An image and a text file uploaded by the file picker, sent with a message; the other tab shows the image's
    320-pixel thumbnail through its signed URL and links the text file for download; a file alone is a message."""
    out = drive(demo_server, "files")
    assert out["thumbnail"]["w"] == 320


def test_search_from_the_room_header(demo_server, db):
    """Every readable room (a public room not in the list named after its fetch), newest first, the last word as a
    prefix and the words found marked; accents ignored; "This room" narrows it; a query of no word gets the server's
    reason; a result opens in its room, the message marked."""
    out = drive(demo_server, "search")
    assert out["found"][0] == "Reporting lines change next month"
