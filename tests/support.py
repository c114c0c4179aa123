"""Test helpers: a live server process, a REST client, users, and a recording Socket.IO client."""

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import socketio
from bson import ObjectId
from pymongo import ReturnDocument, monitoring

from model.embedded import free_port
from tests.forking import ForkServer

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
_names = itertools.count(1)


class PortTaken(RuntimeError):
    """The server could not listen: another process took its port first."""


def listens(pid, port):
    """Whether process `pid` holds a socket listening on TCP `port` (Linux: /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        inodes = {os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)}
    except OSError:  # the process is gone, or a descriptor closed meanwhile: not yet
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
        if local_port == port and state == "0A" and f"socket:[{inode}]" in inodes:  # 0A: LISTEN
            return True
    return False


class LiveServer:
    """`python server.py` (or another `script`) in a subprocess, on a free port, with its log in a file."""

    def __init__(self, mongo_uri, log_dir, script="server.py", **env):
        self.script = script
        self.log_dir = Path(log_dir)
        # With SSL_CERTFILE the server speaks TLS; its self-signed certificate is the one to trust.
        self.verify = str(env["SSL_CERTFILE"]) if env.get("SSL_CERTFILE") else True
        self.scheme = "https" if env.get("SSL_CERTFILE") else "http"
        self.env = {
            **os.environ,
            "APP_ENV": "testing",
            "HOST": "127.0.0.1",
            "MONGODB_URI": mongo_uri,
            "JWT_SECRET_KEY": TEST_SECRET,
            "RATE_LIMITS_ENABLED": "false",
            # The suite empties the database between tests under servers that live on: positions held in a
            # server's memory would outlive the messages and counters deleted (tests/test_held_positions.py).
            "POSITIONS_IN_MEMORY": "false",
            "PYTHONUNBUFFERED": "1",
            **{key: str(value) for key, value in env.items()},
        }
        self.use_port(free_port())
        self.proc = None

    def use_port(self, port):
        self.port, self.env["PORT"] = port, str(port)
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        self.log_path = self.log_dir / f"server-{port}.log"

    def start(self, timeout=30):
        """Start the server and wait until it answers on its port. Another worker's server may take a free port
        between the pick and the bind: a first start then goes to another port (a restart keeps its URL)."""
        first = self.proc is None
        for _ in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if not first:
                    raise
                self.use_port(free_port())
        raise PortTaken(f"no free port after three tries:\n{self.log()}")

    def _start(self, timeout):
        if self.script == "server.py":
            self.proc = ForkServer.get().start(self.env, self.log_path)
        else:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, self.script], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                error = PortTaken if "Address already in use" in self.log() else RuntimeError
                raise error(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                # Only once this process listens: until then another process on the port may answer.
                answered = requests.get(self.url + "/api/health", timeout=1, verify=self.verify).status_code
                if answered in (200, 503) and listens(self.proc.pid, self.port):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Api:
    """A small REST client bound to one server: `api.post("/api/send", token, json=...)`."""

    def __init__(self, url, verify=True):
        self.url = url
        self.http = requests.Session()
        self.http.verify = verify

    def request(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Explicit: requests lets REQUESTS_CA_BUNDLE override a session's own `verify`.
        return self.http.request(
            method, self.url + path, headers=headers, timeout=10, verify=self.http.verify, **kwargs
        )

    def get(self, path, token=None, **kwargs):
        return self.request("GET", path, token, **kwargs)

    def post(self, path, token=None, **kwargs):
        return self.request("POST", path, token, **kwargs)

    def put(self, path, token=None, **kwargs):
        return self.request("PUT", path, token, **kwargs)

    def patch(self, path, token=None, **kwargs):
        return self.request("PATCH", path, token, **kwargs)

    def delete(self, path, token=None, **kwargs):
        return self.request("DELETE", path, token, **kwargs)


@dataclass
class ChatUser:
    id: str
    username: str
    token: str
    refresh: str
    password: str


@dataclass
class JoinedPair:
    """Two users, each with a socket joined to the same room (the `joined_pair` fixture)."""

    users: tuple[ChatUser, ChatUser]
    sockets: tuple["SocketClient", "SocketClient"]
    room: str


def register(api, username=None, password="password-123", **extra):
    """Register a fresh user through the API and return it with its tokens."""
    username = username or f"user{next(_names)}"
    response = api.post("/api/auth/register", json={"username": username, "password": password, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return ChatUser(body["user"]["id"], username, body["accessToken"], body["refreshToken"], password)


def make_admin(db, user):
    """Give a registered user the global admin role (no route grants it); return the user."""
    db.users.update_one({"_id": ObjectId(user.id)}, {"$set": {"role": "admin"}})
    return user


def plan_stages(explained):
    """The stages of an explained query's winning plan, outermost first (`SORT`, `FETCH`, `IXSCAN`, ...)."""
    stages, stage = [], explained["queryPlanner"]["winningPlan"]
    while stage:
        stages.append(stage)
        stage = stage.get("inputStage")
    return stages


def store_messages(db, room_id, docs):
    """Insert message documents straight into the database, in order, with positions as the server gives them."""
    counter = db.room_counters.find_one_and_update(
        {"_id": ObjectId(room_id)}, {"$inc": {"seq": len(docs)}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    first = counter["seq"] - len(docs) + 1
    for start in range(0, len(docs), 5000):
        chunk = docs[start : start + 5000]
        db.messages.insert_many([{**doc, "seq": first + start + i} for i, doc in enumerate(chunk)])


class Commands(monitoring.CommandListener):
    """The commands this process sends: (name, the command)."""

    def __init__(self):
        self.sent = []

    @property
    def names(self):
        return [name for name, _ in self.sent]

    def started(self, event):
        self.sent.append((event.command_name, event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def self_signed_certificate(directory):
    """Write a certificate for 127.0.0.1 and its key into `directory`; return their paths."""
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def assert_error(response, status, code):
    """Assert the contract's error shape with this status and code; return the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


class SocketClient:
    """python-socketio's real client, recording every server event it receives."""

    def __init__(self, url, token=None, transports=None, auth=True, client_options=None, **connect_kwargs):
        self.sio = socketio.Client(reconnection=False, **(client_options or {}))
        self.events = []
        self.cond = threading.Condition()
        self.gone = threading.Event()
        self.sio.on("*", self._record)
        self.sio.on("disconnect", lambda *reason: self.gone.set())
        self.url, self.token, self.transports, self.auth = url, token, transports, auth
        self.connect_kwargs = connect_kwargs

    def _record(self, event, *args):
        with self.cond:
            self.events.append((event, args[0] if args else None))
            self.cond.notify_all()

    def connect(self):
        auth = {"token": self.token} if self.auth and self.token is not None else None
        self.sio.connect(
            self.url, auth=auth, transports=self.transports or ["websocket"], wait_timeout=10, **self.connect_kwargs
        )
        return self

    def call(self, event, *args, timeout=10):
        return self.sio.call(event, *args, timeout=timeout)

    def received(self, event):
        with self.cond:
            return [data for name, data in self.events if name == event]

    def wait_for(self, event, predicate=lambda data: True, timeout=5):
        """Wait until an `event` matching `predicate` arrives; return its data."""
        return self.wait_for_count(event, 1, predicate, timeout)[0]

    def wait_for_count(self, event, count, predicate=lambda data: True, timeout=5):
        """Wait until `count` `event`s matching `predicate` have arrived; return their data, in order."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [data for name, data in self.events if name == event and predicate(data)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(found)} of {count} {event!r} within {timeout}s; got {self.events}")
                self.cond.wait(remaining)

    def settle(self, timeout=10):
        """One round trip: whatever the server sent this socket before this call is recorded when it returns.

        The event is one the server does not know: it answers `not_found` and changes nothing.
        """
        ack = self.call("settle", timeout=timeout)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", ack

    def wait_for_disconnect(self, timeout=5):
        """Wait until the server disconnects this socket; return whether it did within `timeout`."""
        if not self.gone.wait(timeout):
            return False
        self.sio.eio.wait()  # the client marks itself disconnected only after telling its handlers
        return True

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


class RedisServer:
    """A private `redis-server` (keeping nothing on disk) on a free port; `restart()` keeps the port."""

    def __init__(self, directory):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc = None

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self.url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
