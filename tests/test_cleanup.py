"""The cleanup job as cron runs it (`python -m jobs.cleanup`), once per storage backend where it removes bytes:
uploads no message took within a day go, everything else stays; a dry run changes nothing; a run cut short is
finished by the next."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from tests.file_support import storage_independent
from tests.support import ROOT, assert_error


def _job(node, *args, prelude=""):
    """Run the job as cron would, with the server's settings; `prelude` is Python run first (to inject a failure)."""
    code = f"{prelude}\nimport sys\nfrom jobs.cleanup import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=node.env, capture_output=True, text=True, timeout=120
    )


def _upload(api, user, content=b"some bytes"):
    response = api.post("/api/files", user.token, files={"file": ("notes.bin", content)})
    assert response.status_code == 201, response.text
    return response.json()


def _age(db, file, hours):
    db.files.update_one(
        {"_id": ObjectId(file["id"])}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=hours)}}
    )


@pytest.fixture
def three_files(files_api, make_user, db):
    """An upload no message took for 25 hours, one a message took as long ago, and one 23 hours old."""
    user = make_user()
    stale, attached, recent = (_upload(files_api, user, f"file {n}".encode()) for n in range(3))
    sent = files_api.post("/api/send", user.token, json={"attachments": [attached["id"]]})
    assert sent.status_code == 201
    for file, hours in ((stale, 25), (attached, 25), (recent, 23)):
        _age(db, file, hours)
    return user, stale, attached, recent


def test_only_uploads_unattached_for_a_day_go_and_a_rerun_finds_nothing(files_api, node, storage, three_files):
    user, stale, attached, recent = three_files
    run = _job(node)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "cleanup: removed 1 uploads unattached for 24 h and 0 files of deleted messages or rooms (6 bytes), "
        "gave back 0 files held by failed sends"
    ]
    assert_error(files_api.get(stale["url"]), 404, "not_found")
    assert storage.keys() == {attached["id"], recent["id"]}
    for kept in (attached, recent):
        assert files_api.get(f"/api/files/{kept['id']}", user.token).status_code == 200
    again = _job(node)
    assert again.returncode == 0 and again.stdout.startswith("cleanup: removed 0 uploads"), again.stdout
    assert storage.keys() == {attached["id"], recent["id"]}
    wider = _job(node, "--older-than-hours", "22")
    assert wider.returncode == 0 and wider.stdout.startswith("cleanup: removed 1 uploads"), wider.stdout
    assert storage.keys() == {attached["id"]}


def test_a_dry_run_says_what_would_go_and_removes_nothing(files_api, node, storage, db, three_files):
    _, stale, _, _ = three_files
    before = (storage.keys(), list(db.files.find().sort("_id")))
    run = _job(node, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("cleanup (dry run): would remove 1 uploads unattached for 24 h"), run.stdout
    assert (storage.keys(), list(db.files.find().sort("_id"))) == before
    assert files_api.get(stale["url"]).status_code == 200


# Dies (as a kill would) right after the first stored object is deleted, before its record.
CRASH_AFTER_FIRST_DELETE = """
import os
import services.file_storage as storage
for backend in (storage.GridFSStorage, storage.S3Storage):
    def crash(self, key, delete=backend.delete):
        delete(self, key)
        os._exit(3)
    backend.delete = crash
"""


def test_a_run_killed_halfway_leaves_nothing_served_and_the_next_finishes(files_api, node, storage, db, three_files):
    _, stale, attached, recent = three_files
    killed = _job(node, prelude=CRASH_AFTER_FIRST_DELETE)
    assert killed.returncode == 3 and killed.stdout == ""
    assert storage.keys() == {attached["id"], recent["id"]}  # the bytes went first...
    assert db.files.find_one({"_id": ObjectId(stale["id"])})["doomed"] is True  # ...their record waits, unserved
    assert_error(files_api.get(stale["url"]), 404, "not_found")
    run = _job(node)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("cleanup: removed 0 uploads unattached for 24 h and 1 files of deleted"), run.stdout
    assert db.files.count_documents({}) == 2 and storage.keys() == {attached["id"], recent["id"]}


@storage_independent
def test_files_held_by_sends_that_died_are_given_back(files_api, node, make_user, db):
    user = make_user()
    orphaned, settled = _upload(files_api, user), _upload(files_api, user)
    message = files_api.post("/api/send", user.token, json={"attachments": [settled["id"]]}).json()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    # A send that took a file and died before storing its message; one that died after storing it.
    db.files.update_one({"_id": ObjectId(orphaned["id"])}, {"$set": {"message": ObjectId(), "claimed_at": long_ago}})
    db.files.update_one({"_id": ObjectId(settled["id"])}, {"$set": {"claimed_at": long_ago}})
    assert files_api.post("/api/send", user.token, json={"attachments": [orphaned["id"]]}).status_code == 400
    run = _job(node)
    assert run.returncode == 0 and run.stdout.endswith("gave back 1 files held by failed sends\n"), run.stdout
    assert db.files.find_one({"_id": ObjectId(orphaned["id"])}).keys() & {"claimed_at", "doomed"} == set()
    kept = db.files.find_one({"_id": ObjectId(settled["id"])})
    assert str(kept["message"]) == message["id"] and "claimed_at" not in kept
    assert files_api.post("/api/send", user.token, json={"attachments": [orphaned["id"]]}).status_code == 201


@storage_independent
def test_failures_exit_1_and_bad_arguments_2(files_api, node, make_user, db):
    _age(db, _upload(files_api, make_user()), 25)
    failing = "import jobs.cleanup\nimport services.files\nservices.files._purge = lambda files: 1 / 0"
    run = _job(node, prelude=failing)
    assert run.returncode == 1 and run.stdout == "" and "cleanup: failed" in run.stderr
    for bad in (("--older-than-hours", "0"), ("--older-than-hours", "x"), ("--nope",)):
        assert _job(node, *bad).returncode == 2, bad
