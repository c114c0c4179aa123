"""Fixtures: the database daemon (or TEST_MONGODB_URI), a live server, a clean database per test."""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from urllib.parse import urlsplit

import pymongo
import pytest

from model import embedded
from tests.file_support import BACKENDS, MotoS3, Storage
from tests.support import Api, JoinedPair, LiveServer, RedisServer, SocketClient, make_admin, register


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    """A MongoDB wire-protocol server: TEST_MONGODB_URI, or a SecantusDB daemon of our own (each xdist worker's own).

    On TEST_MONGODB_URI each worker has a database of its own, the URI's name with the worker's after it: every
    worker empties its database before each test.
    """
    if os.environ.get("TEST_MONGODB_URI"):
        uri, worker = os.environ["TEST_MONGODB_URI"], os.environ.get("PYTEST_XDIST_WORKER")
        yield embedded.with_database(uri, f"{urlsplit(uri).path.strip('/')}_{worker}") if worker else uri
        return
    log = tmp_path_factory.mktemp("db") / "secantusd.log"
    proc, uri = embedded.start_daemon(":memory:", log_path=str(log))
    yield embedded.with_database(uri, "chat_test")
    embedded.stop_daemon(proc)


@pytest.fixture(scope="session")
def db(mongo_uri):
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield client.get_default_database()
    client.close()


@pytest.fixture(scope="session")
def server_factory(mongo_uri, tmp_path_factory):
    """Start extra servers with their own settings; all are stopped at the end of the session."""
    started = []
    log_dir = tmp_path_factory.mktemp("servers")

    def start(uri=None, **env):
        server = LiveServer(uri or mongo_uri, log_dir, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:  # no test reads them any more: a kill, not a drain (a few tenths of a CPU second each)
        server.kill()


@pytest.fixture(scope="session")
def server(server_factory):
    """The shared live server (rate limits off)."""
    return server_factory()


@pytest.fixture
def in_process(mongo_uri, db):
    """Call the services in this process, on the test database (threading mode): `in_process(*listeners)` sets the
    app up, with pymongo command listeners if any; its context lasts the test."""
    import mongoengine

    from model import init_db
    from server import create_app

    with ExitStack() as stack:

        def enter(*listeners):
            app = create_app("testing", MONGODB_URI=mongo_uri, ASYNC_MODE="threading")
            stack.enter_context(app.app_context())
            init_db(app, listeners=list(listeners))

        yield enter
    mongoengine.disconnect()  # later tests in this process connect on their own terms


@pytest.fixture(autouse=True)
def clean_db(request):
    """Every test that touches the database starts from an empty one (the `general` room stays), but in a module
    marked `shared_db`, whose tests each make rooms of their own."""
    uses_db = "db" in request.fixturenames or "server" in request.fixturenames
    if not uses_db or request.node.get_closest_marker("shared_db"):
        yield
        return
    database = request.getfixturevalue("db")
    for name in database.list_collection_names():
        query = {"name_key": {"$ne": "general"}} if name == "rooms" else {}
        database[name].delete_many(query)
    database.rooms.update_many({}, {"$set": {"archived_seq": 0, "archiving_from": 0}})  # no message is left
    yield


@pytest.fixture
def api(server):
    return Api(server.url)


@pytest.fixture
def make_user(api, db):
    """Register users through the API; `make_user(admin=True)` promotes one in the database."""

    def make(username=None, admin=False, **extra):
        user = register(api, username, **extra)
        return make_admin(db, user) if admin else user

    return make


@pytest.fixture
def connect(server):
    """Open real Socket.IO connections to the live server; all are closed after the test."""
    clients = []

    def open_socket(user=None, url=None, **kwargs):
        client = SocketClient(url or server.url, user.token if user else None, **kwargs)
        clients.append(client)
        return client.connect()

    yield open_socket
    # All at once: a close waits up to 3 s (websocket-client's default) for the server's closing frame, which the
    # gevent and threading servers of bench/serve_other.py do not send.
    with ThreadPoolExecutor(max(1, len(clients))) as pool:
        list(pool.map(SocketClient.close, clients))


@pytest.fixture
def joined_pair(connect, make_user):
    """Two users (new ones unless given), each with a socket joined to one room (`general` unless named).

    `urls` puts each socket on a server of its own choosing (the shared one by default).
    """

    def make(users=None, room=None, urls=(None, None)):
        users = tuple(users or (make_user(), make_user()))
        sockets = tuple(connect(user, url=url) for user, url in zip(users, urls, strict=True))
        acks = [socket.call("join", {} if room is None else {"room": room}) for socket in sockets]
        assert all(ack["ok"] is True for ack in acks), acks
        return JoinedPair(users, sockets, acks[0]["room"])

    return make


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free port, for the message queue."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local moto S3 server for the module's S3 runs."""
    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def storage(request, db, s3):
    """Each storage backend in turn: GridFS in the test database, then S3 on the moto server."""
    return Storage(request.param, db, s3)


@pytest.fixture(scope="module")
def node(storage, server_factory):
    """The server the file tests talk to, storing files in this module's backend."""
    return server_factory(**storage.env())


@pytest.fixture
def files_api(node, server, storage):  # `server`: the shared one, whose fixture empties the database before each test
    storage.clear()
    return Api(node.url)
