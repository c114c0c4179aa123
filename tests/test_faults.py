"""Fault tests (issue 12, items 2-6 and 12): real processes killed with SIGKILL, stalled with SIGSTOP, restarted.

Each test counts what was acknowledged, stored and delivered: 0 lost, 0 duplicated.
- durability: the database daemon (on disk) is SIGKILLed mid-stream; every acked message survives;
- cursors: two processes, concurrent senders, a reader paging `?after=` and `sync` sees each stored
  message once, in position order; a position allocated but not stored holds readers back
  until GAP_SECONDS, then is filled with a tombstone;
- evictions and logouts without a trustworthy Redis index: Redis restarted, Redis down with one
  process, a process stalled past NODE_TTL_SECONDS and swept;
- broadcasts missed while Redis hangs, or by a process killed before it could publish; a
  message stored through one process reaching the other's sockets before a later one stored
  there, and none past a position still being written;
- `resync {rooms}` after a Redis restart;
- a hung Redis (SIGSTOP) must not slow sends down, rate limits on or off.
"""

import contextlib
import signal
import threading
import time
import uuid

import pymongo
import pytest
import redis
import requests
import socketio
from bson import ObjectId

from model import embedded
from tests.support import Api, LiveServer, RedisServer, SocketClient, register
from tests.test_fanout import ordered
from tests.test_metrics import scrape

TTL = 3  # NODE_TTL_SECONDS of every cluster here
GAP = 2  # GAP_SECONDS of every cluster here
FAST = 2.0  # seconds: an ack slower than this while Redis hangs is the bug of item 12


# ---------------------------------------------------------------- processes


@contextlib.contextmanager
def stopped(proc):
    """SIGSTOP a process for the duration of the block; SIGCONT it whatever happens."""
    proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)


def _start_all(servers):
    """Start servers side by side (each takes seconds on a busy machine)."""
    errors = []

    def start(server):
        try:
            server.start(timeout=60)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        _stop_all(servers)
        raise errors[0]
    return servers


def _stop_all(servers):
    """Kill what is left of them (SIGSTOPped or not): no test reads them any more, so none needs a drain."""
    for server in servers:
        server.kill()


def _ensure_running(redis_server):
    """Redis is up, not stopped (a failed test may have left it either way)."""
    if redis_server.proc.poll() is None:
        redis_server.proc.send_signal(signal.SIGCONT)
    else:
        redis_server.start()


class Cluster:
    def __init__(self, redis_server, nodes, env, directory):
        self.redis, self.nodes, self.env, self.directory = redis_server, nodes, env, directory
        self.a, self.b = nodes


@pytest.fixture(scope="module")
def cluster(mongo_uri, tmp_path_factory):
    """Two server processes on the test database and a Redis of their own (module-wide: tests restore it)."""
    directory = tmp_path_factory.mktemp("faults-cluster")
    redis_server = RedisServer(directory)
    redis_server.start()
    env = {
        "REDIS_URL": redis_server.url,
        "SOCKETIO_CHANNEL": f"faults-{uuid.uuid4().hex[:8]}",
        "NODE_TTL_SECONDS": TTL,
        "QUEUE_DOWN_RECHECK_SECONDS": 1,
        "GAP_SECONDS": GAP,
    }
    nodes = [LiveServer(mongo_uri, directory, **env) for _ in range(2)]
    try:
        _start_all(nodes)
        yield Cluster(redis_server, nodes, env, directory)
    finally:
        _stop_all(nodes)
        _ensure_running(redis_server)
        redis_server.stop()


@pytest.fixture
def nodes(cluster, db):
    """The cluster, with its Redis running and both processes alive and serving."""
    _ensure_running(cluster.redis)
    for node in cluster.nodes:
        assert node.proc.poll() is None, f"a cluster process died:\n{node.log()[-3000:]}"
        node.proc.send_signal(signal.SIGCONT)
    yield cluster
    _ensure_running(cluster.redis)
    for node in cluster.nodes:
        node.proc.send_signal(signal.SIGCONT)


# ---------------------------------------------------------------- chat helpers


def _room(api, owner, members=(), private=True):
    """A room made by `owner` with these users as members; its id."""
    room = api.post("/api/rooms", owner.token, json={"name": f"r-{uuid.uuid4().hex[:10]}", "private": private})
    assert room.status_code == 201, room.text
    room_id = room.json()["id"]
    for member in members:
        added = api.put(f"/api/rooms/{room_id}/members/{member.id}", owner.token, json={"role": "member"})
        assert added.status_code == 200, added.text
    return room_id


def _joined(client, room=None):
    ack = client.call("join", {"room": room} if room else {})
    assert ack["ok"] is True, ack
    return ack["room"]


def _copies(client, message_id):
    return len([m for m in client.received("message") if m["id"] == message_id])


def _got(client, message_id, timeout):
    try:
        client.wait_for("message", lambda m: m["id"] == message_id, timeout=timeout)
        return True
    except AssertionError:
        return False


def _until_linked(sender, receivers, room, timeout=25):
    """Send probes until each receiver (on other processes) gets one: the message queue carries again."""
    deadline = time.monotonic() + timeout
    while True:
        probe = sender.call("message", {"room": room, "messageBody": "probe"})
        assert probe["ok"] is True, probe
        if all(_got(r, probe["message"]["id"], 1) for r in receivers):
            return
        assert time.monotonic() < deadline, "the processes never linked up again through Redis"


def _disconnected(client):
    gone = threading.Event()
    client.sio.on("disconnect", lambda *args: gone.set())
    return gone


def _timed(function, *args, **kwargs):
    started = time.monotonic()
    result = function(*args, **kwargs)
    return result, time.monotonic() - started


# ---------------------------------------------------------------- 1. database SIGKILL (item 3)


class DiskDaemon:
    """A SecantusDB daemon on disk that can be SIGKILLed and restarted on the same port and path."""

    def __init__(self, directory):
        self.path, self.log = str(directory / "db"), str(directory / "secantusd.log")
        self.port = embedded.free_port()
        self.proc, self.uri = embedded.start_daemon(self.path, self.port, log_path=self.log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self):
        self.proc, _ = embedded.start_daemon(self.path, self.port, log_path=self.log)

    def stop(self):
        embedded.stop_daemon(self.proc)


@pytest.fixture(scope="module")
def durable(tmp_path_factory):
    """A server on an on-disk database daemon of its own (module-wide: every trial restarts the daemon)."""
    directory = tmp_path_factory.mktemp("faults-durable")
    daemon = DiskDaemon(directory)
    server = LiveServer(daemon.uri, directory, DB_TIMEOUT_MS=1000)
    try:
        _start_all([server])
        yield daemon, server
    finally:
        _stop_all([server])
        daemon.stop()


SENDERS, PER_SENDER, KILL_AFTER = 4, 75, 90  # 300 sends a trial; SIGKILL once 90 are acked


@pytest.mark.parametrize("trial", [1, 2, 3])
def test_every_acknowledged_message_survives_a_sigkill_of_the_database(durable, trial):
    daemon, server = durable
    api = Api(server.url)
    users = [register(api) for _ in range(SENDERS)]
    clients = [SocketClient(server.url, user.token).connect() for user in users]
    acked, refused, hung, slow = {}, {}, [], []
    restarted_at = []
    lock, kill_now = threading.Lock(), threading.Event()

    def stream(index, client):
        for n in range(PER_SENDER):
            client_id = f"t{trial}-{index}-{n}"
            started = time.monotonic()
            try:
                ack = client.call("message", {"messageBody": f"durable {client_id}", "clientId": client_id}, timeout=15)
            except socketio.exceptions.TimeoutError:
                hung.append(client_id)
                continue
            took = time.monotonic() - started
            with lock:
                if took > 5:
                    slow.append((client_id, round(took, 1)))
                if ack["ok"]:
                    acked[client_id] = (ack["message"]["id"], bool(restarted_at) and started > restarted_at[0])
                else:
                    refused[client_id] = ack["error"]["code"]
                if len(acked) >= KILL_AFTER:
                    kill_now.set()

    threads = [threading.Thread(target=stream, args=pair) for pair in enumerate(clients)]
    logged_before = len(server.log())
    try:
        for thread in threads:
            thread.start()
        assert kill_now.wait(60), "the stream never got going"
        daemon.kill()
        killed_at = time.monotonic()
        # Sends meanwhile find the database gone: the socket senders, and this one over REST.
        rest_id = f"t{trial}-rest"
        down, down_took = _timed(
            api.post, "/api/send", users[0].token, json={"messageBody": "down", "clientId": rest_id}
        )
        time.sleep(max(0.0, killed_at + 1 - time.monotonic()))
        daemon.restart()
        restarted_at.append(time.monotonic())
        for thread in threads:
            thread.join(120)
    finally:
        for client in clients:
            client.close()

    client = pymongo.MongoClient(daemon.uri, tz_aware=True)
    try:
        messages = client.get_default_database().messages
        stored = {doc["client_id"]: str(doc["_id"]) for doc in messages.find({"client_id": {"$regex": f"^t{trial}-"}})}
        lost = sorted(cid for cid, (mid, _) in acked.items() if stored.get(cid) != mid)
        counts = (
            f"trial {trial}: {len(acked)} acked ({sum(after for _, after in acked.values())} after the restart), "
            f"{len(refused)} refused {sorted(set(refused.values()))}, {len(hung)} unanswered, "
            f"{len(stored)} stored, {len(lost)} acked but lost {lost[:10]}; "
            f"REST send with the database down: {down.status_code} in {down_took:.1f}s"
        )
        print(counts)
        assert not hung, f"sends hung while the database was down: {counts}"
        assert down_took < 5 and set(down.json()) == {"error"}, (down.status_code, down.text)
        assert not slow, f"sends took over 5 s: {slow}"
        assert any(after for _, after in acked.values()), f"no send was acked after the restart: {counts}"
        assert not lost, counts
        # The outage is logged once, not with a traceback for every send that met it.
        logged = server.log()[logged_before:]
        assert "database unreachable" in logged and "Traceback" not in logged, logged[logged.find("Traceback") :][:3000]

        # A client retries what was refused, with the same clientId: each is then stored exactly once.
        for client_id in [*refused, rest_id]:
            sender = users[0 if client_id == rest_id else int(client_id.split("-")[1])]
            answer = api.post("/api/send", sender.token, json={"messageBody": "retry", "clientId": client_id})
            assert answer.status_code in (200, 201), answer.text
            assert client_id not in stored or answer.json()["id"] == stored[client_id], "a retry stored a copy"
        docs = list(messages.find({"client_id": {"$regex": f"^t{trial}-"}}, {"client_id": 1}))
        assert len(docs) == SENDERS * PER_SENDER + 1 == len({doc["client_id"] for doc in docs}), "stored once each"
    finally:
        client.close()


# ---------------------------------------------------------------- 2. cursors across processes (item 4)


def test_a_reader_paging_after_sees_every_message_of_two_processes_once_in_order(nodes, connect, make_user, db):
    api_a, api_b = Api(nodes.a.url), Api(nodes.b.url)
    owner, reader = make_user(), make_user()
    room = _room(api_a, owner, private=False)
    anchor = api_a.post("/api/send", owner.token, json={"room": room, "messageBody": "anchor"}).json()["id"]
    senders = []  # (kind, user, node)
    for node, api in ((nodes.a, api_a), (nodes.b, api_b)):
        for kind in ("socket", "socket", "rest"):
            user = make_user()
            assert api.post(f"/api/rooms/{room}/join", user.token).status_code == 200
            senders.append((kind, user, node, api))
    reads = [connect(reader, url=nodes.a.url), connect(reader, url=nodes.b.url)]
    per_sender, page_size = 25, 7
    acked, errors = [], []
    lock = threading.Lock()

    def send(kind, user, node, api):
        client = SocketClient(node.url, user.token).connect() if kind == "socket" else None
        try:
            for n in range(per_sender):
                payload = {"room": room, "messageBody": f"{user.username} {n}", "clientId": f"{user.id}-{n}"}
                if client is not None:
                    ack = client.call("message", payload)
                    ok, message = ack["ok"], ack.get("message")
                else:
                    answer = api.post("/api/send", user.token, json=payload)
                    ok, message = answer.status_code == 201, answer.json()
                with lock:
                    (acked if ok else errors).append(message["id"] if ok else message)
        except Exception as error:  # a test failure, reported by the main thread
            errors.append(repr(error))
        finally:
            if client is not None:
                client.close()

    def via_rest(api):
        def read(cursor):
            answer = api.get(f"/api/messages?room={room}&after={cursor}&limit={page_size}", reader.token)
            assert answer.status_code == 200, answer.text
            return answer.json()

        return read

    def via_sync(client):
        def read(cursor):
            ack = client.call("sync", {"room": room, "after": cursor, "limit": page_size})
            assert ack["ok"] is True, ack
            return ack

        return read

    readers = [via_rest(api_a), via_sync(reads[0]), via_rest(api_b), via_sync(reads[1])]
    threads = [threading.Thread(target=send, args=sender) for sender in senders]
    for thread in threads:
        thread.start()
    seen, cursor, turn = [], anchor, 0
    deadline = None
    while True:
        finished = not any(thread.is_alive() for thread in threads)
        page = readers[turn % len(readers)](cursor)
        turn += 1
        assert page["nextCursor"] in (None, page["messages"][-1]["id"] if page["messages"] else None), page
        seen += [message["id"] for message in page["messages"]]
        if page["messages"]:
            cursor = page["messages"][-1]["id"]
        elif finished:
            deadline = deadline or time.monotonic() + GAP + 8
            if len(seen) >= len(acked) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert not errors, errors[:5]
    stored = [
        str(doc["_id"])
        for doc in db.messages.find({"room": ObjectId(room), "gap": {"$ne": True}}, {"_id": 1}).sort("seq", 1)
    ]
    assert stored[0] == anchor
    stored = stored[1:]
    assert len(acked) == 6 * per_sender and sorted(acked) == sorted(stored), "acked vs stored"
    dupes = len(seen) - len(set(seen))
    missed = set(stored) - set(seen)
    print(f"cursors: {len(acked)} acked, {len(stored)} stored, {len(seen)} read in {turn} pages, {dupes} twice")
    assert not missed and not dupes, f"{len(missed)} stored messages never read, {dupes} read twice"
    assert seen == stored, "the reader's order is not the position order"


def test_after_stops_before_an_allocated_unstored_position_until_gap_seconds(nodes, connect, make_user, db):
    api = Api(nodes.a.url)
    owner = make_user()
    room = _room(api, owner)
    watcher = connect(owner, url=nodes.a.url)
    _joined(watcher, room)
    first = api.post("/api/send", owner.token, json={"room": room, "messageBody": "first"}).json()
    assert _got(watcher, first["id"], 5)
    # A writer that allocated the next position and stalled before storing it.
    counter = db.room_counters.find_one_and_update({"_id": ObjectId(room)}, {"$inc": {"seq": 1}}, return_document=True)
    stalled = counter["seq"]
    second = api.post("/api/send", owner.token, json={"room": room, "messageBody": "second"}).json()
    assert db.messages.find_one({"_id": ObjectId(second["id"])})["seq"] == stalled + 1
    assert not _got(watcher, second["id"], GAP / 2), "a socket got a message past a position still being written"
    page = api.get(f"/api/messages?room={room}&after={first['id']}", owner.token).json()
    assert page == {"messages": [], "nextCursor": None}, "a reader was handed a cursor past an unstored position"
    client = connect(owner, url=nodes.b.url)
    assert client.call("sync", {"room": room, "after": first["id"]})["messages"] == []
    newest = api.get(f"/api/messages?room={room}", owner.token).json()["messages"]
    assert [m["id"] for m in newest] == [first["id"]], "the newest page showed a message above the pending position"
    deadline = time.monotonic() + GAP + 8
    while True:
        page = api.get(f"/api/messages?room={room}&after={first['id']}", owner.token).json()
        if page["messages"] or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert page == {"messages": [second], "nextCursor": None}, "the pending position was never given up"
    tombstone = db.messages.find_one({"room": ObjectId(room), "seq": stalled})
    assert tombstone is not None and tombstone.get("gap") is True, tombstone
    assert client.call("sync", {"room": room, "after": first["id"]})["messages"] == [second]
    assert _got(watcher, second["id"], 5) and _copies(watcher, second["id"]) == 1, "held for good, or twice"


def test_a_gap_wider_than_one_read_fills_is_given_up_over_a_few_reads(nodes, make_user, db):
    """A writer that died with more positions than one read fills (MAX_FILL): each read fills its share and the next
    goes on from there, where every read used to stop before the gap for good."""
    api = Api(nodes.a.url)
    owner = make_user()
    room = _room(api, owner)
    first = api.post("/api/send", owner.token, json={"room": room, "messageBody": "first"}).json()
    db.room_counters.update_one({"_id": ObjectId(room)}, {"$inc": {"seq": 2500}})
    second = api.post("/api/send", owner.token, json={"room": room, "messageBody": "second"}).json()
    time.sleep(GAP)
    pages = []
    while not (pages and pages[-1]["messages"]) and len(pages) < 10:
        pages.append(api.get(f"/api/messages?room={room}&after={first['id']}", owner.token).json())
    assert pages[-1] == {"messages": [second], "nextCursor": None}, f"{len(pages)} reads"
    assert db.messages.count_documents({"room": ObjectId(room), "gap": True}) == 2500


# ---------------------------------------------------------------- 3. evictions and logouts (item 2)


def _private_room_on_two_nodes(nodes, connect, make_user, guests=1):
    """A private room: owner's socket on A; guests' and a witness's sockets on B; all joined, linked."""
    api = Api(nodes.a.url)
    owner, witness = make_user(), make_user()
    guest_users = [make_user() for _ in range(guests)]
    room = _room(api, owner, [witness, *guest_users])
    o = connect(owner, url=nodes.a.url)
    w = connect(witness, url=nodes.b.url)
    gs = [connect(guest, url=nodes.b.url) for guest in guest_users]
    for client in (o, w, *gs):
        _joined(client, room)
    _until_linked(o, [w, *gs], room)
    return api, owner, room, o, w, guest_users, gs


def _delivery_stops(owner_client, witness, guests, room, within=5.0):
    """Send from the owner until the witness gets a message none of the guests gets; return how long it took.

    `within=0`: the first message sent must already reach none of them.
    """
    started = time.monotonic()
    while True:
        sent = owner_client.call("message", {"room": room, "messageBody": "members only"})["message"]
        assert _got(witness, sent["id"], 10), "the witness on the other process stopped receiving the room"
        time.sleep(0.3)  # a guest's copy would arrive with the witness's
        leaked = [g for g in guests if _copies(g, sent["id"])]
        if not leaked:
            return time.monotonic() - started, sent["id"]
        waited = time.monotonic() - started
        assert waited < within, f"{len(leaked)} removed member(s) still receive the room after {waited:.1f}s"


def test_removal_after_a_redis_restart_reaches_the_members_socket(nodes, connect, make_user):
    api, owner, room, o, w, guests, gs = _private_room_on_two_nodes(nodes, connect, make_user, guests=2)
    nodes.redis.stop()  # the presence index goes with it
    nodes.redis.start()
    # One removal races the processes' reconnection to Redis, the other comes once they are linked again.
    assert api.delete(f"/api/rooms/{room}/members/{guests[0].id}", owner.token).status_code == 204
    _until_linked(o, [w], room)
    assert api.delete(f"/api/rooms/{room}/members/{guests[1].id}", owner.token).status_code == 204
    _, last = _delivery_stops(o, w, gs, room, within=0)
    time.sleep(0.5)
    assert not any(_copies(g, last) for g in gs), "a removed member got the room's messages after the restart"


def test_removal_and_logout_with_redis_down_and_one_process(server_factory, connect, make_user, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    node = server_factory(REDIS_URL=redis_server.url, SOCKETIO_CHANNEL="faults-solo", QUEUE_DOWN_RECHECK_SECONDS=1)
    try:
        api = Api(node.url)
        owner, witness, guest, leaver = make_user(), make_user(), make_user(), make_user()
        room = _room(api, owner, [witness, guest])
        o, w, g, quitter = (connect(user, url=node.url) for user in (owner, witness, guest, leaver))
        for client in (o, w, g):
            _joined(client, room)
        _joined(quitter)
        gone = _disconnected(quitter)
        redis_server.stop()
        assert api.delete(f"/api/rooms/{room}/members/{guest.id}", owner.token).status_code == 204
        sent = o.call("message", {"room": room, "messageBody": "after the removal"})["message"]
        assert _got(w, sent["id"], 3)
        time.sleep(0.3)
        assert not _copies(g, sent["id"]), "a member removed while Redis is down still receives the room"
        started = time.monotonic()
        assert api.post("/api/auth/logout", leaver.token).status_code == 204
        assert gone.wait(2), "a logout while Redis is down left the token's socket connected"
        print(f"redis down, one process: logout disconnected its socket in {time.monotonic() - started:.2f}s")
    finally:
        node.kill()
        redis_server.stop()


def test_a_swept_process_still_evicts_and_disconnects_its_sockets(nodes, connect, make_user):
    api, owner, room, o, w, guests, gs = _private_room_on_two_nodes(nodes, connect, make_user, guests=2)
    leaver = make_user()
    quitter = connect(leaver, url=nodes.b.url)
    gone = _disconnected(quitter)
    with stopped(nodes.b.proc):
        # A sweeps B once B's liveness key expires: B's users leave the room as far as A can tell.
        o.wait_for("user_left", lambda e: e["userId"] == guests[0].id, timeout=TTL + 10)
        assert api.delete(f"/api/rooms/{room}/members/{guests[0].id}", owner.token).status_code == 204
    assert api.delete(f"/api/rooms/{room}/members/{guests[1].id}", owner.token).status_code == 204
    took, _ = _delivery_stops(o, w, gs, room)
    print(f"swept process: removed members stopped receiving within {took:.2f}s")
    started = time.monotonic()
    assert api.post("/api/auth/logout", leaver.token).status_code == 204
    assert gone.wait(5), "a logout through A left the token's socket on the swept process B connected"
    print(f"swept process: logout disconnected its socket on B in {time.monotonic() - started:.2f}s")


# ---------------------------------------------------------------- 4. missed broadcasts (item 5)


def test_a_message_sent_while_redis_hangs_reaches_the_other_process_once(nodes, connect, make_user):
    alice, bob = make_user(), make_user()
    a, b = connect(alice, url=nodes.a.url), connect(bob, url=nodes.b.url)
    room = _joined(a)
    _joined(b)
    _until_linked(a, [b], room)
    with stopped(nodes.redis.proc):
        ack, took = _timed(a.call, "message", {"messageBody": "while redis hangs", "clientId": "hang-1"})
        assert ack["ok"] is True and took < FAST, (ack, took)
        sent = ack["message"]
        assert _got(a, sent["id"], 1), "the sender's process did not deliver it to its own sockets at once"
        time.sleep(2.5)  # past the publish timeout: the publisher has given up once and retries
        assert not _copies(b, sent["id"])
    assert _got(b, sent["id"], 10), "the other process never got a message sent while Redis hung"
    time.sleep(TTL)  # nodes counted dead while Redis hung re-broadcast what they stored: all of it is dropped
    assert (_copies(a, sent["id"]), _copies(b, sent["id"])) == (1, 1)


def _three_in_a_room(nodes, connect, make_user):
    """A new room with a watcher and a sender on process A, a sender on B: (room, watcher, here, there)."""
    owner, alice, bob = make_user(), make_user(), make_user()
    room = _room(Api(nodes.a.url), owner, [alice, bob])
    watcher = ordered(connect(owner, url=nodes.a.url))
    here, there = connect(alice, url=nodes.a.url), connect(bob, url=nodes.b.url)
    for client in (watcher, here, there):
        _joined(client, room)
    return room, watcher, here, there


def _seen(client, messages):
    """The ids among `messages` that `client` got, in the order it got them."""
    ids = {message["id"] for message in messages}
    return [m["id"] for m in client.received("message") if m["id"] in ids]


@pytest.mark.parametrize("traffic_before", [True, False], ids=["after-traffic", "first-messages"])
def test_a_message_stored_through_the_other_process_reaches_sockets_before_a_later_one_stored_here(
    nodes, connect, make_user, traffic_before
):
    """Redis hangs, so B's message cannot come through it: A's later one waits for it (ORDER_HOLD_MS), then A reads
    it from the database and delivers both in position order. A client that resumes after the last message it got
    (`sync` after it) then skips nothing; Redis's copy, once it comes, is dropped. The room's first messages too: a
    room's first socket on a process starts it from the room's settled position, not from the first message seen."""
    room, watcher, here, there = _three_in_a_room(nodes, connect, make_user)
    if traffic_before:
        _until_linked(there, [watcher], room)
    with stopped(nodes.redis.proc):
        earlier = there.call("message", {"room": room, "messageBody": "stored through B"})["message"]
        later = here.call("message", {"room": room, "messageBody": "stored through A"})["message"]
        watcher.wait_for("message", lambda m: m["id"] == later["id"], timeout=FAST - 0.5)  # before a publish times out
        assert _seen(watcher, [earlier, later]) == [earlier["id"], later["id"]], "a message before an earlier one"
    assert _got(there, later["id"], 10)
    time.sleep(1)  # B's broadcast of the earlier message comes through Redis now
    assert (_copies(watcher, earlier["id"]), _copies(watcher, later["id"])) == (1, 1)
    counted = scrape(nodes.a.url)
    assert counted.value("chat_messages_held_total") >= 1 and counted.value("chat_messages_read_for_order_total") >= 1


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_held_message_s_change_reaches_sockets_after_it(nodes, connect, make_user, change):
    """A's message waits for B's earlier one (Redis hangs), and its author changes it meanwhile: the change must come
    after the message (a client keeping the last state it got kept the original), and a message deleted meanwhile
    must not come at all (it came back with its original body)."""
    room, watcher, here, there = _three_in_a_room(nodes, connect, make_user)
    with stopped(nodes.redis.proc):
        earlier = there.call("message", {"room": room, "messageBody": "stored through B"})["message"]
        held = here.call("message", {"room": room, "messageBody": "original"})["message"]
        _change(nodes.a, here, held, change, watcher)
        assert _got(watcher, earlier["id"], FAST - 0.5)
    time.sleep(1)  # whatever was held on A, and Redis's copies, have come
    expected = {"edit": [("message", "original"), ("message_updated", "edited")], "delete": [("message_deleted", None)]}
    assert _states(watcher, held) == expected[change]


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_change_made_before_its_message_came_reaches_sockets_after_it(nodes, connect, make_user, change):
    """B stores a message while Redis hangs, and its author changes it through A, where it has not come: A's sockets
    got the change first, then the message with its original body, which a client kept (or kept a deleted one). The
    change now waits for the message (ORDER_HOLD_MS), which A reads from the database, as changed."""
    room, watcher, _, there = _three_in_a_room(nodes, connect, make_user)
    with stopped(nodes.redis.proc):
        message = there.call("message", {"room": room, "messageBody": "original"})["message"]
        _change(nodes.a, there, message, change, watcher)
    time.sleep(1)  # B's broadcast of the message comes through Redis now
    expected = {"edit": [("message", "edited"), ("message_updated", "edited")], "delete": [("message_deleted", None)]}
    assert _states(watcher, message) == expected[change]


def _change(node, author, message, change, watcher):
    """`author` edits or deletes `message` through `node`; `watcher` gets that within a hold and a read."""
    path = f"/api/messages/{message['id']}"
    if change == "edit":
        answer = Api(node.url).patch(path, author.token, json={"messageBody": "edited"})
    else:
        answer = Api(node.url).delete(path, author.token)
    assert answer.status_code in (200, 204), answer.text
    event = "message_updated" if change == "edit" else "message_deleted"
    watcher.wait_for(event, lambda m: m["id"] == message["id"], timeout=FAST - 0.5)


def _states(client, message):
    """The events of `message` that `client` got, each with its body, in order."""
    return [(name, data.get("messageBody")) for name, data in client.events if (data or {}).get("id") == message["id"]]


def test_a_socket_joining_while_a_broadcast_is_late_gets_nothing_from_before_its_join(nodes, connect, make_user):
    """The room's first socket on A joins while B's message, stored before the join, is stuck in a hung Redis: the
    socket starts after it (history has it), so its broadcast, once it comes, is not delivered after A's later one."""
    owner, bob = make_user(), make_user()
    room = _room(Api(nodes.a.url), owner, [bob])
    there = connect(bob, url=nodes.b.url)
    _joined(there, room)
    with stopped(nodes.redis.proc):
        before = there.call("message", {"room": room, "messageBody": "before the join"})["message"]
        joiner = ordered(connect(owner, url=nodes.a.url))
        _joined(joiner, room)
        after = Api(nodes.a.url).post("/api/send", owner.token, json={"room": room, "messageBody": "after"}).json()
        assert _got(joiner, after["id"], FAST - 0.5)
    assert _got(there, after["id"], 10)
    time.sleep(1)  # B's broadcast of the message before the join comes through Redis now
    assert _seen(joiner, [before, after]) == [after["id"]]


def test_a_position_a_retry_left_to_a_tombstone_holds_no_room_back(nodes, connect, make_user):
    """A retry of a stored clientId fails on the unique index after taking a position, which a tombstone fills: the
    writer announces it in order with the room's messages, so the next message goes out without a wait and a read
    (before, every process held the room ORDER_HOLD_MS, then read the database)."""
    room, watcher, here, there = _three_in_a_room(nodes, connect, make_user)
    sent = there.call("message", {"room": room, "messageBody": "once", "clientId": "retried"})["message"]
    assert _got(watcher, sent["id"], 5)
    reads = scrape(nodes.a.url).value("chat_order_reads_total")
    retry = there.call("message", {"room": room, "messageBody": "once", "clientId": "retried"})
    assert retry["ok"] is True and retry["message"]["id"] == sent["id"]
    after = here.call("message", {"room": room, "messageBody": "after the tombstone"})["message"]
    assert _got(watcher, after["id"], 5)
    time.sleep(0.5)  # past ORDER_HOLD_MS: a hold would have read by now
    assert scrape(nodes.a.url).value("chat_order_reads_total") == reads
    assert _seen(watcher, [sent, after]) == [sent["id"], after["id"]]


def test_a_message_deleted_before_its_late_broadcast_came_is_not_delivered(nodes, connect, make_user):
    """B stores a message and deletes it while Redis hangs, then stores another; A stores a third. A reads the first
    two from the database, the first deleted: its broadcast, once Redis carries it, must not bring it back."""
    room, watcher, here, there = _three_in_a_room(nodes, connect, make_user)
    with stopped(nodes.redis.proc):
        gone = there.call("message", {"room": room, "messageBody": "soon deleted"})["message"]
        deleted = Api(nodes.b.url).delete(f"/api/messages/{gone['id']}", there.token)
        assert deleted.status_code == 204, deleted.text
        kept = there.call("message", {"room": room, "messageBody": "kept"})["message"]
        later = here.call("message", {"room": room, "messageBody": "stored through A"})["message"]
        watcher.wait_for("message", lambda m: m["id"] == later["id"], timeout=FAST - 0.5)
    watcher.wait_for("message_deleted", lambda m: m["id"] == gone["id"], timeout=10)
    time.sleep(1)  # everything B published while Redis hung has come
    assert _seen(watcher, [gone, kept, later]) == [kept["id"], later["id"]]


@contextlib.contextmanager
def hanging(redis_server, how):
    """Redis hangs: SIGSTOPped, or pausing every write (PUBLISH included) with CLIENT PAUSE WRITE."""
    if how == "sigstop":
        with stopped(redis_server.proc):
            yield
        return
    admin = redis.Redis.from_url(redis_server.url)
    admin.client_pause(60_000, all=False)
    try:
        yield
    finally:
        admin.client_unpause()
        admin.close()


# SIGSTOP: Redis still holds the dead process's PUBLISH in its socket buffer and runs it on SIGCONT.
# CLIENT PAUSE WRITE: Redis drops the dead client's postponed PUBLISH; only the survivors can send it.
@pytest.mark.parametrize("hang", ["sigstop", "client-pause"])
def test_a_message_stored_by_a_process_killed_before_publishing_reaches_the_others_once(
    nodes, connect, make_user, db, hang
):
    doomed = _start_all([LiveServer(nodes.a.env["MONGODB_URI"], nodes.directory, **nodes.env)])[0]
    try:
        alice, bob = make_user(), make_user()
        a, b = connect(alice, url=doomed.url), connect(bob, url=nodes.b.url)
        room = _joined(a)
        _joined(b)
        _until_linked(a, [b], room)
        with hanging(nodes.redis, hang):
            ack, took = _timed(a.call, "message", {"messageBody": "last words", "clientId": "last-words"})
            assert ack["ok"] is True and took < FAST, (ack, took)
            sent = ack["message"]
            assert _got(a, sent["id"], 1)
            time.sleep(0.5)  # its publisher has sent the PUBLISH and waits for Redis
            doomed.proc.send_signal(signal.SIGKILL)
            doomed.proc.wait()
            time.sleep(0.5)
        # The client had its ack: it does not retry. The survivors must broadcast it.
        arrived, waited = _timed(_got, b, sent["id"], 2 * TTL + 8)
        print(f"killed process: its last message reached B {'after' if arrived else 'not within'} {waited:.1f}s")
        assert arrived, "a message acked by a process killed before publishing never reached the room"
        # A client whose ack was lost retries on the other process with the same clientId.
        retry = Api(nodes.b.url).post(
            "/api/send", alice.token, json={"messageBody": "last words", "clientId": "last-words"}
        )
        assert retry.status_code == 200 and retry.json()["id"] == sent["id"], retry.text
        time.sleep(TTL)
        assert _copies(b, sent["id"]) == 1
        assert db.messages.count_documents({"client_id": "last-words"}) == 1
    finally:
        doomed.kill()


# ---------------------------------------------------------------- 5. resync (item 6)


def test_sockets_on_both_processes_are_told_to_resync_their_rooms_after_a_redis_restart(nodes, connect, make_user):
    alice, bob = make_user(), make_user()
    private = _room(Api(nodes.a.url), alice)
    public = _room(Api(nodes.a.url), alice, private=False)
    a, b = connect(alice, url=nodes.a.url), connect(bob, url=nodes.b.url)
    rooms_a = {_joined(a), _joined(a, private)}
    rooms_b = {_joined(b), _joined(b, public)}
    general = next(iter(rooms_a & rooms_b))
    _until_linked(a, [b], general)
    # A keeps talking through the restart: each message B's socket misses live must be followed by a resync.
    sent, streak, deadline = [], 0, time.monotonic() + 30
    nodes.redis.stop()
    stopped_at = time.monotonic()
    while streak < 3 or not (a.received("resync") and b.received("resync")):
        assert time.monotonic() < deadline, "the processes never linked up again, or never told their sockets"
        if nodes.redis.proc.poll() is not None and time.monotonic() - stopped_at > 0.5:
            nodes.redis.start()
        resyncs_before = len(b.received("resync"))
        message = a.call("message", {"room": general, "messageBody": "across the restart"})["message"]
        sent.append((message["id"], resyncs_before))
        live = _got(b, message["id"], 0.3)
        streak = streak + 1 if live and nodes.redis.proc.poll() is None else 0
    time.sleep(1)
    for resync in a.received("resync"):
        assert set(resync["rooms"]) == rooms_a, resync
    for resync in b.received("resync"):
        assert set(resync["rooms"]) == rooms_b, resync
    resyncs = len(b.received("resync"))
    missed = [(mid, before) for mid, before in sent if not _copies(b, mid)]
    untold = [mid for mid, before in missed if resyncs <= before]
    print(f"resync: {len(sent)} sent across the restart, B missed {len(missed)} live, got {resyncs} resync(s)")
    assert not untold, f"{len(untold)} of {len(sent)} messages missed by B's socket with no resync after them"


# ---------------------------------------------------------------- 6. a hung Redis (item 12)


def _hung_redis_sends(node, connect, make_user, redis_proc):
    """Sends through `node` (socket and REST, concurrently) while Redis is SIGSTOPped; their latencies."""
    users = [make_user() for _ in range(3)]
    listener = connect(make_user(), url=node.url)
    room = _joined(listener)
    clients = [connect(user, url=node.url) for user in users]
    results = []

    def socket_send(client, n):
        started = time.monotonic()
        try:
            ack = client.call("message", {"messageBody": f"socket {n}"}, timeout=6)
            results.append(("socket", time.monotonic() - started, ack["ok"], ack.get("message", {}).get("id")))
        except socketio.exceptions.TimeoutError:
            results.append(("socket", time.monotonic() - started, None, None))

    def rest_send(user, n):
        started = time.monotonic()
        try:
            answer = requests.post(
                node.url + "/api/send",
                json={"messageBody": f"rest {n}"},
                headers={"Authorization": f"Bearer {user.token}"},
                timeout=6,
            )
            ok = answer.status_code == 201
            results.append(("rest", time.monotonic() - started, ok, answer.json()["id"] if ok else None))
        except requests.Timeout:
            results.append(("rest", time.monotonic() - started, None, None))

    with stopped(redis_proc):
        for round_ in range(2):  # the first round may meet Redis freshly hung, the second knows it is
            threads = [threading.Thread(target=socket_send, args=(c, round_)) for c in clients]
            threads += [threading.Thread(target=rest_send, args=(u, round_)) for u in users]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            slowest = max(took for _, took, _, _ in results)
            summary = f"{len(results)} sends while Redis hangs, slowest {slowest:.2f}s: " + ", ".join(
                f"{kind} {took:.2f}s{'' if ok else ' (no ack)' if ok is None else ' (error)'}"
                for kind, took, ok, _ in results
            )
            print(summary)
            assert all(ok for _, _, ok, _ in results) and slowest < FAST, summary
        for _, _, _, message_id in results:
            assert _got(listener, message_id, 1), "a send while Redis hangs did not reach the process's own sockets"
    return room


def test_sends_ack_and_deliver_locally_at_normal_latency_while_redis_hangs(nodes, connect, make_user):
    _hung_redis_sends(nodes.a, connect, make_user, nodes.redis.proc)


def test_sends_ack_at_normal_latency_while_redis_hangs_with_rate_limits_on(
    server_factory, connect, make_user, tmp_path
):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    node = server_factory(REDIS_URL=redis_server.url, SOCKETIO_CHANNEL="faults-limited", RATE_LIMITS_ENABLED="true")
    try:
        _hung_redis_sends(node, connect, make_user, redis_server.proc)
    finally:
        node.kill()
        redis_server.stop()
