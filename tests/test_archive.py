"""The archiver as cron runs it (`python -m jobs.archive`), against the real database daemon."""

import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from tests.support import ROOT, TEST_SECRET, assert_error, store_messages

_serial = iter(range(1, 10**9))


def _old_id(days_ago):
    """A unique ObjectId whose time is `days_ago` days back."""
    stamp = int((datetime.now(UTC) - timedelta(days=days_ago)).timestamp())
    return ObjectId(stamp.to_bytes(4, "big") + next(_serial).to_bytes(8, "big"))


def _seed(db, room_id, count, days_ago, user_id=None):
    """Insert `count` messages as the server stores them, `days_ago` days old; return their ids."""
    user_id = ObjectId(user_id) if user_id else ObjectId()
    docs = []
    for i in range(count):
        oid = _old_id(days_ago)
        docs.append(
            {
                "_id": oid,
                "room": ObjectId(room_id),
                "user_id": user_id,
                "user_name": "seed",
                "message_body": f"old {i}",
                "time_stamp": oid.generation_time,
                "deleted": False,
            }
        )
    store_messages(db, room_id, docs)
    return [doc["_id"] for doc in docs]


def _job(server, *args, env=None, prelude="", timeout=120, wait=True):
    """Run the archiver as cron would; `prelude` is Python run first (to inject a failure, or park the run)."""
    code = f"{prelude}\nimport sys\nfrom jobs.archive import main\nsys.exit(main(sys.argv[1:]))"
    full_env = {**os.environ, "MONGODB_URI": server.env["MONGODB_URI"], "JWT_SECRET_KEY": TEST_SECRET, **(env or {})}
    cmd = [sys.executable, "-c", code, *args]
    if not wait:
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, text=True, **pipes)
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


# Holds the run once its first batch is copied into the archive (not yet published or deleted):
# it says so on stdout, then waits for a line on stdin.
PARK_AFTER_FIRST_COPY = """
import sys
import services.archive as archive
_copy = archive._copy
def _parked(archive_collection, docs):
    _copy(archive_collection, docs)
    if not getattr(_parked, "done", False):
        _parked.done = True
        print("parked", flush=True)
        sys.stdin.readline()
archive._copy = _parked
"""


def _parked_job(server, *args, env=None):
    """Start the archiver and return it once it is parked after its first batch's copy."""
    proc = _job(server, *args, env=env, prelude=PARK_AFTER_FIRST_COPY, wait=False)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if line != "parked\n":
        proc.kill()
        raise AssertionError(f"the run did not park: {line!r} {proc.communicate()}")
    return proc


def _wait_for_the_lease_to_expire(db):
    """Sleep until the archive lease a killed run left behind has expired."""
    lease = db.job_leases.find_one({"_id": "archive"})
    if lease is not None:
        time.sleep(max(0.0, (lease["expires_at"] - datetime.now(UTC)).total_seconds()) + 0.05)


def _general(api, user):
    return api.get("/api/rooms/general", user.token).json()["id"]


def _everything(api, user, room, archived):
    """Page through a room's history and return every message id."""
    ids, cursor = [], None
    while True:
        query = f"/api/messages?room={room}&limit=100&archived={str(archived).lower()}"
        page = api.get(query + (f"&before={cursor}" if cursor else ""), user.token).json()
        ids += [m["id"] for m in page["messages"]]
        cursor = page["nextCursor"]
        if not cursor:
            return ids


def _assert_each_once(db, ids):
    """Assert every seeded message is stored somewhere (each test starts from an empty database)."""
    live = {d["_id"] for d in db.messages.find({}, {"_id": 1})}
    archived = {d["_id"] for d in db.archived_messages.find({}, {"_id": 1})}
    assert live | archived == set(ids), "a message was lost"
    return live, archived


def test_moves_messages_older_than_the_cutoff_and_history_reads_both(server, api, make_user, db):
    user = make_user()
    room = _general(api, user)
    old = _seed(db, room, 5, days_ago=40)
    recent = [api.post("/api/send", user.token, json={"messageBody": f"new {i}"}).json()["id"] for i in range(3)]
    result = _job(server)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert "scanned 5, moved 5, batches 1" in summary and "older than 30 days" in summary
    assert (result.stdout + result.stderr).count("scanned 5") == 1, "one summary line, not one logged and one printed"
    assert db.messages.count_documents({}) == 3 and db.archived_messages.count_documents({}) == 5
    assert _everything(api, user, room, archived=False) == recent[::-1]
    assert _everything(api, user, room, archived=True) == [str(i) for i in old[::-1]]
    page = api.get(f"/api/messages?archived=true&limit=2&room={room}", user.token).json()
    assert [m["archived"] for m in page["messages"]] == [True, True] and page["nextCursor"] == str(old[3])
    after = api.get(f"/api/messages?archived=true&after={old[0]}&limit=10", user.token).json()["messages"]
    assert [m["id"] for m in after] == [str(i) for i in old[1:]]
    assert_error(api.patch(f"/api/messages/{old[0]}", user.token, json={"messageBody": "x"}), 404, "not_found")


def test_by_room_and_by_age(server, api, make_user, db):
    user = make_user()
    general = _general(api, user)
    side = api.post("/api/rooms", user.token, json={"name": "side"}).json()["id"]
    _seed(db, general, 4, days_ago=40)
    side_old = _seed(db, side, 3, days_ago=40)
    _seed(db, side, 2, days_ago=10)
    result = _job(server, "--room", side, "--batch-size", "2")
    assert "scanned 3, moved 3, batches 2, rooms 1" in result.stdout
    assert {d["_id"] for d in db.archived_messages.find()} == set(side_old)
    assert "moved 6, batches 2" in _job(server, "--older-than-days", "7", "--batch-size", "4").stdout


def test_dry_run_moves_nothing_and_a_rerun_is_a_no_op(server, api, make_user, db):
    user = make_user()
    _seed(db, _general(api, user), 7, days_ago=40)
    dry = _job(server, "--dry-run", "--batch-size", "5")
    assert dry.returncode == 0 and "would move 7 messages older than 30 days in 2 batches" in dry.stdout
    assert db.archived_messages.count_documents({}) == 0 and db.messages.count_documents({}) == 7
    assert "moved 7" in _job(server).stdout
    again = _job(server)
    assert again.returncode == 0 and "scanned 0, moved 0, batches 0" in again.stdout


FAIL_AFTER_COPY = """
import services.archive as archive
def _interrupted(live, archive_collection, batch):
    raise RuntimeError("injected failure between copy and delete")
archive._retire = _interrupted
"""


def test_interrupted_between_copy_and_delete_then_rerun(server, api, make_user, db):
    user = make_user()
    room = _general(api, user)
    ids = _seed(db, room, 6, days_ago=40)
    failed = _job(server, "--batch-size", "4", prelude=FAIL_AFTER_COPY)
    assert failed.returncode == 1 and "injected failure" in failed.stderr
    live, archived = _assert_each_once(db, ids)
    assert live & archived, "the failure should have left copies in both places"
    seen = _everything(api, user, room, archived=False) + _everything(api, user, room, archived=True)
    assert sorted(seen) == sorted(str(i) for i in ids), "a reader saw a message twice or not at all"
    rerun = _job(server, "--batch-size", "4")
    assert rerun.returncode == 0, rerun.stderr
    live, archived = _assert_each_once(db, ids)
    assert not live and archived == set(ids)
    assert db.archived_messages.count_documents({}) == 6


def test_sigkill_mid_run_then_rerun_loses_nothing(server, api, make_user, db):
    user = make_user()
    ids = _seed(db, _general(api, user), 300, days_ago=40)
    env = {"ARCHIVE_LEASE_SECONDS": "1"}
    proc = _parked_job(server, "--batch-size", "100", env=env)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    live, _ = _assert_each_once(db, ids)
    assert live, "the run was killed before it finished"
    _wait_for_the_lease_to_expire(db)
    rerun = _job(server, "--batch-size", "100", env=env)
    assert rerun.returncode == 0, rerun.stderr
    live, _archived = _assert_each_once(db, ids)
    assert not live and db.archived_messages.count_documents({}) == 300
    print(f"\nrerun after SIGKILL: {rerun.stdout.strip()}")


def test_a_held_lease_makes_a_second_run_wait_its_turn(server, api, make_user, db):
    user = make_user()
    _seed(db, _general(api, user), 3, days_ago=40)
    db.job_leases.insert_one(
        {"_id": "archive", "owner": "someone", "expires_at": datetime.now(UTC) + timedelta(minutes=5)}
    )
    blocked = _job(server)
    assert blocked.returncode == 0 and "another run is in progress" in blocked.stdout
    assert db.archived_messages.count_documents({}) == 0
    db.job_leases.update_one({"_id": "archive"}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}})
    assert "moved 3" in _job(server).stdout
    assert db.job_leases.count_documents({}) == 0


def test_two_concurrent_runs_move_each_message_once(server, api, make_user, db):
    user = make_user()
    ids = _seed(db, _general(api, user), 300, days_ago=40)
    first = _parked_job(server, "--batch-size", "100")  # holds the lease, mid-batch
    second = _job(server, "--batch-size", "100")
    assert "another run is in progress" in second.stdout, second.stdout + second.stderr
    outputs = [first.communicate("go\n", timeout=120), (second.stdout, second.stderr)]
    runs = [first, second]
    assert [run.returncode for run in runs] == [0, 0], outputs
    moved = sum(int(out.split("moved ")[1].split(",")[0]) for out, _ in outputs if "moved " in out)
    assert moved == 300
    live, _archived = _assert_each_once(db, ids)
    assert not live and db.archived_messages.count_documents({}) == 300


def test_unreachable_database_fails_fast(server):
    started = time.monotonic()
    result = _job(server, env={"MONGODB_URI": "mongodb://127.0.0.1:1/nowhere", "DB_TIMEOUT_MS": "1000"})
    assert result.returncode == 1 and "cannot reach the database" in result.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "lots"], "--batch-size"),
        (["--older-than-days", "-1"], "--older-than-days"),
        (["--room", "not-an-id"], "--room"),
        (["--room", "ffffffffffffffffffffffff"], "--room"),
        (["--frobnicate"], "--frobnicate"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(server, args, flag):
    result = _job(server, *args)
    assert result.returncode == 2 and flag in result.stderr


def test_archived_history_keeps_private_rooms_private(server, api, make_user, db):
    owner, outsider = make_user(), make_user()
    room = api.post("/api/rooms", owner.token, json={"name": "vault", "private": True}).json()["id"]
    _seed(db, room, 2, days_ago=40)
    _job(server)
    assert len(api.get(f"/api/messages?room={room}&archived=true", owner.token).json()["messages"]) == 2
    assert_error(api.get(f"/api/messages?room={room}&archived=true", outsider.token), 404, "not_found")


def test_sockets_hear_messages_archived_through_the_queue(server_factory, redis_url, connect, make_user, db, api):
    node = server_factory(REDIS_URL=redis_url)
    user = make_user()
    client = connect(user, url=node.url)
    room = client.call("join", {})["room"]
    _seed(db, room, 2, days_ago=40)
    result = _job(node, env={"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    event = client.wait_for("messages_archived", timeout=10)
    assert event["room"] == room and event["before"].endswith("Z")


def test_what_changes_between_copy_and_removal_is_copied_again(server, api, make_user, db):
    """A thread reply, a reaction or a pin landing while a batch is copied is archived with the message."""
    user = make_user()
    ids = _seed(db, _general(api, user), 2, days_ago=40)
    proc = _parked_job(server)
    changed = {"reply_count": 3, "reactions": [{"emoji": "👍", "user_ids": [ObjectId(user.id)]}]}
    db.messages.update_one({"_id": ids[0]}, {"$set": changed})
    db.messages.update_one({"_id": ids[1]}, {"$set": {"pinned_at": datetime.now(UTC)}})
    _, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    first, second = (db.archived_messages.find_one({"_id": oid}) for oid in ids)
    assert first["reply_count"] == 3 and first["reactions"] == changed["reactions"]
    assert second["pinned_at"] is not None and db.messages.count_documents({}) == 0


def test_archived_mentions_leave_the_mentions_feed(server, api, make_user, db):
    alice, bob = make_user(), make_user()
    room = _general(api, alice)
    named = {"mentions": [ObjectId(bob.id)], "search_keys": [f"@{bob.id}"]}
    old = [
        {"_id": oid, "room": ObjectId(room), "user_id": ObjectId(alice.id), "user_name": "seed", "message_body": "@bob",
         "time_stamp": oid.generation_time, "deleted": False, "client_id": client_id, **named}
        for oid, client_id in ((_old_id(40), "kept-a-stub"), (_old_id(40), None))
    ]  # fmt: skip
    store_messages(db, room, old)
    recent = api.post("/api/send", alice.token, json={"messageBody": f"@{bob.username} now"}).json()["id"]
    feed = api.get("/api/mentions", bob.token).json()["messages"]
    assert [m["id"] for m in feed] == [recent, str(old[1]["_id"]), str(old[0]["_id"])]
    assert _job(server).returncode == 0
    assert [m["id"] for m in api.get("/api/mentions", bob.token).json()["messages"]] == [recent]
    assert "search_keys" not in db.messages.find_one({"_id": old[0]["_id"]}), "a stub keeps no keys"
