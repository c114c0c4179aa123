"""The Postman collection: it covers every REST route, and newman passes it against a live server."""

import json
import re
import subprocess

from routes import MODULES, docs
from tests.support import ROOT

COLLECTION = ROOT / "docs" / "postman" / "chat.postman_collection.json"


def _requests(items):
    for item in items:
        yield from _requests(item["item"]) if "item" in item else [item["request"]]


def test_collection_covers_every_route():
    covered = set()
    for request in _requests(json.loads(COLLECTION.read_text())["item"]):
        path = "/" + "/".join(request["url"]["path"])
        covered.add((request["method"], re.sub(r"\{\{\w+\}\}", "<>", path)))
    for module in MODULES:
        if module is docs:
            continue
        for method, path, _ in module.RULES:
            assert (method, "/api" + re.sub(r"<\w+>", "<>", path)) in covered, (method, path)


def test_newman_runs_the_collection(server):
    newman = ROOT / "tests" / "js" / "node_modules" / ".bin" / "newman"
    # --working-dir: the upload's file (`src`) is found next to the collection.
    files = ("--working-dir", str(COLLECTION.parent))
    result = subprocess.run(
        [str(newman), "run", str(COLLECTION), "--env-var", f"baseUrl={server.url}", *files, "--reporters", "cli"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"assertions\s+│\s+\d+\s+│\s+0\s+│", result.stdout), result.stdout[-2000:]
