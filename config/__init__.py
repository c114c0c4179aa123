"""Configuration classes, read from the environment (and a `.env` file) when the app is built."""

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dotenv import load_dotenv


class ConfigError(Exception):
    """A setting the process refuses to start with; the message names it."""


@dataclass(frozen=True)
class Env:
    """A setting from the first of `names` set in the environment, else `default`: a value, or a
    function of the other settings (resolved after them)."""

    names: tuple[str, ...]
    default: Any = None
    parse: Callable[[str], Any] = str

    def read(self, environ):
        """Return the value from `environ`, or the default; raise ConfigError for one that does not parse."""
        for name in self.names:
            value = environ.get(name, "").strip()
            if value:
                try:
                    return self.parse(value)
                except ValueError as error:
                    raise ConfigError(f"{name} must be {error}, not {value!r}") from None
        return self.default


def _whole(value):
    try:
        return int(value)
    except ValueError:
        raise ValueError("a whole number") from None


def text(*names, default=None):
    """A string, from the first of `names` that is set."""
    return Env(names, default)


def number(name, default, unit=1):
    """A whole number; `unit` scales it (minutes given, seconds kept)."""
    return Env((name,), default if callable(default) else default * unit, lambda value: _whole(value) * unit)


def flag(name, default):
    """A yes/no: 1, true, yes or on mean yes."""
    return Env((name,), default, lambda value: value.lower() in ("1", "true", "yes", "on"))


def listing(name, default):
    """A comma-separated list."""
    return Env((name,), default, lambda value: [item.strip() for item in value.split(",") if item.strip()])


class Config:
    """Settings shared by every environment; each one can be set from the environment."""

    APP_ENV = "development"
    HOST = text("HOST", default="127.0.0.1")
    PORT = number("PORT", 5000)
    ASYNC_MODE = text("ASYNC_MODE", default="eventlet")
    ASYNC_MODES = ("eventlet", "gevent", "threading")
    # eventlet's server stops accepting at 1024 connections by default.
    MAX_CONNECTIONS = number("MAX_CONNECTIONS", 10000)
    # An HTTP connection that sends nothing for this long is closed (half-sent headers included).
    # An upgraded websocket gets engine.io's own timeout instead: ping interval + ping timeout.
    HTTP_TIMEOUT_SECONDS = number("HTTP_TIMEOUT_SECONDS", 60)
    MONGODB_URI = text("MONGODB_URI", "MONGO_URI")
    # honcho names each process it starts `<type>.<n>`: web.2 and later are not the only process.
    PROCESS_NAME = text("HONCHO_PROCESS_NAME", default="")
    # Where the embedded SecantusDB keeps its files when MONGODB_URI is unset.
    EMBEDDED_DB_PATH = text("EMBEDDED_DB_PATH", default=":memory:")
    EMBEDDED_DB_PORT = number("EMBEDDED_DB_PORT", 0)
    DB_TIMEOUT_MS = number("DB_TIMEOUT_MS", 3000)
    # Connections per process to the database (pymongo's default is 100).
    DB_MAX_POOL_SIZE = number("DB_MAX_POOL_SIZE", 100)
    JWT_SECRET_KEY = text("JWT_SECRET_KEY")
    JWT_ALGORITHM = "HS256"
    JWT_DECODE_ALGORITHMS = ["HS256"]
    JWT_ACCESS_TOKEN_EXPIRES = number("ACCESS_TOKEN_MINUTES", 15, unit=60)
    JWT_REFRESH_TOKEN_EXPIRES = number("REFRESH_TOKEN_DAYS", 30, unit=86400)
    CORS_ORIGINS = listing("CORS_ORIGINS", ["*"])
    REDIS_URL = text("REDIS_URL")
    # Connections a process opens to Redis for presence at most; callers beyond wait for one.
    REDIS_MAX_CONNECTIONS = number("REDIS_MAX_CONNECTIONS", 50)
    SOCKETIO_CHANNEL = text("SOCKETIO_CHANNEL", default="chat-socketio")
    # A process that stops refreshing its liveness for this long counts as gone (its users go offline).
    NODE_TTL_SECONDS = number("NODE_TTL_SECONDS", 15)
    # A socket re-reads its membership of a room it posts in at least this often. Role changes and
    # removals reach it at once (control messages; a re-check while Redis is down): this is a backstop.
    MEMBERSHIP_CACHE_SECONDS = number("MEMBERSHIP_CACHE_SECONDS", 60)
    # A position allocated this long ago and still empty is taken to belong to a dead writer
    # (model/message_scan.py): readers fill it instead of waiting for it.
    GAP_SECONDS = number("GAP_SECONDS", 10)
    # With REDIS_URL, a room's message that arrives before an earlier one stored through another process waits this
    # long for it before the database is asked (utils/transport/ordering.py).
    ORDER_HOLD_MS = number("ORDER_HOLD_MS", 250)
    # Without REDIS_URL this is the one serving process: it hands out messages' positions from memory and writes
    # the rooms' counters a second later (model/message_log.py, HeldPositions). False: a round trip to the
    # counters for each batch of sends, for a database that something else rewrites under the process (the test
    # suite's cleanup between tests).
    POSITIONS_IN_MEMORY = flag("POSITIONS_IN_MEMORY", True)
    # Senders' read-marker moves (each message moves its sender's marker) gather this long before one write; this
    # process answers read state with what it holds (services/read_state.py). Alone it answers every read: 5 s.
    # With REDIS_URL other processes answer reads too: the stored marker follows within half a second.
    SENT_MARKERS_MS = number("SENT_MARKERS_MS", lambda settings: 500 if settings["REDIS_URL"] else 5000)
    # A connection that has not authenticated (joined the default namespace) by then is closed.
    AUTH_TIMEOUT_SECONDS = number("AUTH_TIMEOUT_SECONDS", 10)
    # One publish to Redis waits at most this long; what failed is published again later.
    PUBLISH_TIMEOUT_SECONDS = number("PUBLISH_TIMEOUT_SECONDS", 2)
    # While the message queue is down, sockets are checked against the database this often.
    QUEUE_DOWN_RECHECK_SECONDS = number("QUEUE_DOWN_RECHECK_SECONDS", 2)
    # A user whose last socket leaves a room and who comes back within this many milliseconds
    # costs the room no user_left/user_joined pair (join/left churn is coalesced).
    PRESENCE_GRACE_MS = number("PRESENCE_GRACE_MS", 1000)
    # A serving process freezes what each full garbage collection leaves (utils/gc_policy.py) and
    # thaws it this often, so that cycles among those objects that became garbage are collected.
    GC_THAW_SECONDS = number("GC_THAW_SECONDS", 600)
    # A serving process gives the free pages of its heap back to the system once this many MiB more are free than
    # after its last trim (utils/heap.py: what a connect storm freed); 0 never trims.
    HEAP_TRIM_MB = number("HEAP_TRIM_MB", 8)
    # Sockets whose access token expired are disconnected within this many seconds.
    TOKEN_EXPIRY_CHECK_SECONDS = number("TOKEN_EXPIRY_CHECK_SECONDS", 10)
    # SIGTERM waits at most this long for requests in flight.
    SHUTDOWN_TIMEOUT = number("SHUTDOWN_TIMEOUT", 10)
    # After SIGTERM the process keeps accepting this long, answering /api/health/ready with 503, so a
    # load balancer takes it out of rotation before it stops accepting (part of SHUTDOWN_TIMEOUT).
    DRAIN_GRACE_SECONDS = number("DRAIN_GRACE_SECONDS", 0)
    ARCHIVE_AFTER_DAYS = number("ARCHIVE_AFTER_DAYS", 30)
    # An archiver run holds its lease this long past each batch; a run killed mid-way blocks the next no longer.
    ARCHIVE_LEASE_SECONDS = number("ARCHIVE_LEASE_SECONDS", 300)
    LOG_LEVEL = Env(("LOG_LEVEL",), "INFO", str.upper)
    LOG_FORMAT = Env(("LOG_FORMAT",), "text", str.lower)
    SENTRY_DSN = text("SENTRY_DSN")
    # GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when set; production without
    # one serves it only on METRICS_PORT (0: no listener of its own), bound to METRICS_HOST.
    METRICS_TOKEN = text("METRICS_TOKEN")
    METRICS_PORT = number("METRICS_PORT", 0)
    METRICS_HOST = text("METRICS_HOST", default="127.0.0.1")
    # The `process` label on every sample: Heroku's dyno name, else host:port.
    METRICS_PROCESS = text(
        "METRICS_PROCESS", "DYNO", default=lambda settings: f"{socket.gethostname()}:{settings['PORT']}"
    )
    # The browser demo at /demo.
    DEMO_UI = flag("DEMO_UI", False)
    MAX_CONTENT_LENGTH = number("MAX_CONTENT_LENGTH", 64 * 1024)
    # Files (POST /api/files): the largest upload, how long a signed file URL works, where the bytes go.
    MAX_UPLOAD_BYTES = number("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    FILE_URL_TTL = number("FILE_URL_TTL", 3600)
    FILE_STORAGE = text("FILE_STORAGE", default="gridfs")
    FILE_STORAGES = ("gridfs", "s3")
    S3_BUCKET = text("S3_BUCKET")
    S3_ENDPOINT_URL = text("S3_ENDPOINT_URL")
    S3_REGION = text("S3_REGION")
    SOCKET_MAX_BUFFER = number("SOCKET_MAX_BUFFER", 1_000_000)
    # engine.io's: a ping this long after each pong; a socket whose pong is this late is closed.
    SOCKET_PING_INTERVAL = number("SOCKET_PING_INTERVAL", 25)
    SOCKET_PING_TIMEOUT = number("SOCKET_PING_TIMEOUT", 20)
    # permessage-deflate costs a compression per recipient of every broadcast frame.
    WEBSOCKET_COMPRESSION = flag("WEBSOCKET_COMPRESSION", False)
    RATELIMIT_ENABLED = flag("RATE_LIMITS_ENABLED", True)
    RATELIMIT_STORAGE_URI = text("REDIS_URL", default="memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # A hung Redis must not hold a request: short timeouts, then Flask-Limiter counts in memory.
    RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # With Redis down, limits fail open rather than failing every request.
    RATELIMIT_SWALLOW_ERRORS = True
    # Failed logins only, per username from one address (the owner elsewhere is not locked out)...
    LOGIN_RATE_LIMIT = text("LOGIN_RATE_LIMIT", default="10/minute")
    # ...and per address whatever the username: an address behind NAT is shared by many users.
    LOGIN_ADDRESS_RATE_LIMIT = text("LOGIN_ADDRESS_RATE_LIMIT", default="50/minute")
    REGISTER_RATE_LIMIT = text("REGISTER_RATE_LIMIT", default="20/hour")
    MESSAGE_RATE_LIMIT = text("MESSAGE_RATE_LIMIT", default="10/second")
    TYPING_RATE_LIMIT = text("TYPING_RATE_LIMIT", default="5/second")
    # Message edits, deletes, pins and unpins together.
    EDIT_RATE_LIMIT = text("EDIT_RATE_LIMIT", default="30/minute")
    ROOM_CREATE_RATE_LIMIT = text("ROOM_CREATE_RATE_LIMIT", default="20/hour")
    # History pages and socket `sync` together: a reconnect syncs each joined room once.
    READ_RATE_LIMIT = text("READ_RATE_LIMIT", default="300/minute")
    # `join` and `left` together: churn costs every member of the room a presence event.
    JOIN_RATE_LIMIT = text("JOIN_RATE_LIMIT", default="30/minute")
    # Reactions added and removed, REST and `react` together: a click each, but each one that changes
    # something costs the room a `message_updated`.
    REACTION_RATE_LIMIT = text("REACTION_RATE_LIMIT", default="30/10seconds")
    UPLOAD_RATE_LIMIT = text("UPLOAD_RATE_LIMIT", default="30/minute")
    MAX_SOCKETS_PER_USER = number("MAX_SOCKETS_PER_USER", 20)
    # Events one user's sockets may send at once, and a second after: at least what the user limits above allow at
    # once together (300 reads, 30 joins, 30 reactions, 10 messages, 5 typing), so only a flood meets it.
    SOCKET_EVENT_BURST = number("SOCKET_EVENT_BURST", 500)
    SOCKET_EVENT_RATE = number("SOCKET_EVENT_RATE", 50)
    # `@room`/`@here` sends each member a `notification` only in rooms up to this size; above it
    # they still count in everyone's mentionCount and mentions feed.
    MENTION_ROOM_MAX_MEMBERS = number("MENTION_ROOM_MAX_MEMBERS", 1000)
    # A read marker's move reaches the whole room up to this many members; in larger rooms only
    # the reader's own sockets, so that a thousand readers do not cost a million deliveries.
    READ_RECEIPTS_MAX_MEMBERS = number("READ_RECEIPTS_MAX_MEMBERS", 50)
    # Reverse proxies in front of the app (Heroku's router is one): X-Forwarded-* from that
    # many hops is trusted, so limits key on the real client address and cannot be spoofed.
    TRUSTED_PROXY_HOPS = number("TRUSTED_PROXY_HOPS", 0)
    # Direct TLS for `python server.py` (`make run`), without a proxy in front.
    SSL_CERTFILE = text("SSL_CERTFILE")
    SSL_KEYFILE = text("SSL_KEYFILE")
    # argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    ARGON2_TIME_COST = number("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST = number("ARGON2_MEMORY_COST", 65536)
    ARGON2_PARALLELISM = number("ARGON2_PARALLELISM", 4)


# A literal secret is only acceptable where nothing real is protected.
_LOCAL_SECRET = "local-development-secret-not-for-production-use"


class DevelopmentConfig(Config):
    """Local development: embedded database, permissive CORS, the browser demo."""

    DEMO_UI = flag("DEMO_UI", True)
    JWT_SECRET_KEY = text("JWT_SECRET_KEY", default=_LOCAL_SECRET)


class TestingConfig(Config):
    """The test suite: same behaviour, cheaper password hashing."""

    APP_ENV = "testing"
    TESTING = True
    JWT_SECRET_KEY = text("JWT_SECRET_KEY", default=_LOCAL_SECRET)
    ARGON2_TIME_COST = number("ARGON2_TIME_COST", 1)
    ARGON2_MEMORY_COST = number("ARGON2_MEMORY_COST", 8192)
    ARGON2_PARALLELISM = number("ARGON2_PARALLELISM", 1)
    PRESENCE_GRACE_MS = number("PRESENCE_GRACE_MS", 200)


class ProductionConfig(Config):
    """Production: secrets and the database must come from the environment."""

    APP_ENV = "production"
    HOST = text("HOST", default="0.0.0.0")
    CORS_ORIGINS = listing("CORS_ORIGINS", [])
    # Heroku's router is one proxy; a process serving TLS itself (SSL_CERTFILE) has none in front,
    # and trusting a hop there would let any client forge its address.
    TRUSTED_PROXY_HOPS = number("TRUSTED_PROXY_HOPS", lambda settings: 0 if settings["SSL_CERTFILE"] else 1)
    # Long enough for a load balancer's readiness probe to notice, within SHUTDOWN_TIMEOUT.
    DRAIN_GRACE_SECONDS = number("DRAIN_GRACE_SECONDS", lambda settings: min(5, settings["SHUTDOWN_TIMEOUT"] // 2))
    REQUIRED = ("JWT_SECRET_KEY", "MONGODB_URI")
    MIN_SECRET_LENGTH = 32


config_by_name = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name=None, **overrides):
    """Return the settings of environment `name` (default: APP_ENV) as read now, with `overrides`
    (setting names) applied; raise ConfigError for a setting the process cannot start with."""
    load_dotenv()
    name = name or os.environ.get("APP_ENV", "").strip() or "development"
    if name not in config_by_name:
        raise ConfigError(f"APP_ENV must be one of {', '.join(config_by_name)}, not {name!r}")
    declared = config_by_name[name]
    settings = {key: getattr(declared, key) for key in dir(declared) if key.isupper()}
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    settings = {key: value.read(os.environ) if isinstance(value, Env) else value for key, value in settings.items()}
    settings.update(overrides)
    for key, value in settings.items():
        if callable(value):
            settings[key] = value(settings)
    _check(settings)
    return settings


def _check(settings):
    if settings["ASYNC_MODE"] not in settings["ASYNC_MODES"]:
        raise ConfigError(f"ASYNC_MODE must be one of {', '.join(settings['ASYNC_MODES'])}")
    if not settings["MONGODB_URI"]:
        _check_embedded_alone(settings)
    if settings["FILE_STORAGE"] not in settings["FILE_STORAGES"]:
        raise ConfigError(f"FILE_STORAGE must be one of {', '.join(settings['FILE_STORAGES'])}")
    if settings["FILE_STORAGE"] == "s3" and not settings["S3_BUCKET"]:
        raise ConfigError("FILE_STORAGE=s3 needs S3_BUCKET")
    grace, timeout = settings["DRAIN_GRACE_SECONDS"], settings["SHUTDOWN_TIMEOUT"]
    if grace and grace >= timeout:
        raise ConfigError(f"DRAIN_GRACE_SECONDS ({grace}) must be shorter than SHUTDOWN_TIMEOUT ({timeout})")
    if settings["APP_ENV"] != "production":
        return
    missing = [var for var in settings["REQUIRED"] if not settings[var]]
    if missing:
        raise ConfigError(f"refusing to start in production: set {', '.join(missing)}")
    if len(settings["JWT_SECRET_KEY"]) < settings["MIN_SECRET_LENGTH"]:
        raise ConfigError(
            f"refusing to start in production: JWT_SECRET_KEY needs {settings['MIN_SECRET_LENGTH']} characters or more"
        )
    if "*" in settings["CORS_ORIGINS"]:
        raise ConfigError("refusing to start in production: CORS_ORIGINS must list origins, not '*'")


def _check_embedded_alone(settings):
    """The embedded database (MONGODB_URI unset) belongs to one process: refuse it where this process is one
    of several, which would each get a database of their own (a user registered on one could not log in
    on another). Several: REDIS_URL with an in-memory store, or honcho's second process of a type and on."""
    name, _, number = settings["PROCESS_NAME"].rpartition(".")
    if name and number.isdigit() and int(number) > 1:
        reason, store = f"{settings['PROCESS_NAME']} is one of several processes (HONCHO_PROCESS_NAME)", "embedded"
    elif settings["REDIS_URL"] and settings["EMBEDDED_DB_PATH"] == ":memory:":
        reason, store = "REDIS_URL is set, so this is one of several processes,", "in-memory"
    else:
        return
    raise ConfigError(
        f"{reason} and MONGODB_URI is unset: each would get an {store} database of its own. "
        "Set MONGODB_URI to one they share (a running `make run` serves mongodb://127.0.0.1:27027/chat)"
    )
