"""Configuration classes read from the environment (and a `.env` file)."""

import os
import sys

from dotenv import load_dotenv

load_dotenv()


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _bool(name, default):
    value = _env(name)
    return default if value is None else value.lower() in ("1", "true", "yes", "on")


def _int(name, default):
    value = _env(name)
    return default if value is None else int(value)


def _list(name, default):
    value = _env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


class Config:
    """Settings shared by every environment; each one can be set from the environment."""

    APP_ENV = "development"
    HOST = _env("HOST", "127.0.0.1")
    PORT = _int("PORT", 5000)
    ASYNC_MODE = _env("ASYNC_MODE", "eventlet")
    # eventlet's server stops accepting at 1024 connections by default.
    MAX_CONNECTIONS = _int("MAX_CONNECTIONS", 10000)
    MONGODB_URI = _env("MONGODB_URI") or _env("MONGO_URI")
    # Where the embedded SecantusDB keeps its files when MONGODB_URI is unset.
    EMBEDDED_DB_PATH = _env("EMBEDDED_DB_PATH", ":memory:")
    EMBEDDED_DB_PORT = _int("EMBEDDED_DB_PORT", 0)
    DB_TIMEOUT_MS = _int("DB_TIMEOUT_MS", 3000)
    # Connections per process to the database (pymongo's default is 100).
    DB_MAX_POOL_SIZE = _int("DB_MAX_POOL_SIZE", 100)
    JWT_SECRET_KEY = _env("JWT_SECRET_KEY")
    JWT_ALGORITHM = "HS256"
    JWT_DECODE_ALGORITHMS = ["HS256"]
    JWT_ACCESS_TOKEN_EXPIRES = _int("ACCESS_TOKEN_MINUTES", 15) * 60
    JWT_REFRESH_TOKEN_EXPIRES = _int("REFRESH_TOKEN_DAYS", 30) * 86400
    CORS_ORIGINS = _list("CORS_ORIGINS", ["*"])
    REDIS_URL = _env("REDIS_URL")
    SOCKETIO_CHANNEL = _env("SOCKETIO_CHANNEL", "chat-socketio")
    # A process that stops refreshing its liveness for this long counts as gone (its users go offline).
    NODE_TTL_SECONDS = _int("NODE_TTL_SECONDS", 15)
    # A socket re-reads its membership of a room it posts in at least this often; role changes and
    # removals reach it at once through the message queue, this bounds one missed while Redis was down.
    MEMBERSHIP_CACHE_SECONDS = _int("MEMBERSHIP_CACHE_SECONDS", 60)
    # A position allocated this long ago and still empty is taken to belong to a dead writer
    # (model/message_scan.py): readers fill it instead of waiting for it.
    GAP_SECONDS = _int("GAP_SECONDS", 10)
    # A connection that has not authenticated (joined the default namespace) by then is closed.
    AUTH_TIMEOUT_SECONDS = _int("AUTH_TIMEOUT_SECONDS", 10)
    # One publish to Redis waits at most this long; what failed is published again later.
    PUBLISH_TIMEOUT_SECONDS = _int("PUBLISH_TIMEOUT_SECONDS", 2)
    # While the message queue is down, sockets are checked against the database this often.
    QUEUE_DOWN_RECHECK_SECONDS = _int("QUEUE_DOWN_RECHECK_SECONDS", 2)
    # Sockets whose access token expired are disconnected within this many seconds.
    TOKEN_EXPIRY_CHECK_SECONDS = _int("TOKEN_EXPIRY_CHECK_SECONDS", 10)
    MAX_SOCKETS_PER_USER = _int("MAX_SOCKETS_PER_USER", 20)
    JOIN_RATE_LIMIT = _env("JOIN_RATE_LIMIT", "30/minute")
    READ_RATE_LIMIT = _env("READ_RATE_LIMIT", "60/minute")
    # SIGTERM waits at most this long for requests in flight.
    SHUTDOWN_TIMEOUT = _int("SHUTDOWN_TIMEOUT", 10)
    ARCHIVE_AFTER_DAYS = _int("ARCHIVE_AFTER_DAYS", 30)
    LOG_LEVEL = _env("LOG_LEVEL", "INFO").upper()
    LOG_FORMAT = _env("LOG_FORMAT", "text").lower()
    SENTRY_DSN = _env("SENTRY_DSN")
    # The browser demo at /demo.
    DEMO_UI = _bool("DEMO_UI", False)
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 64 * 1024)
    SOCKET_MAX_BUFFER = _int("SOCKET_MAX_BUFFER", 1_000_000)
    # permessage-deflate costs a compression per recipient of every broadcast frame.
    WEBSOCKET_COMPRESSION = _bool("WEBSOCKET_COMPRESSION", False)
    RATELIMIT_ENABLED = _bool("RATE_LIMITS_ENABLED", True)
    RATELIMIT_STORAGE_URI = _env("REDIS_URL", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # With Redis down, limits fail open rather than failing every request.
    RATELIMIT_SWALLOW_ERRORS = True
    LOGIN_RATE_LIMIT = _env("LOGIN_RATE_LIMIT", "10/minute")
    REGISTER_RATE_LIMIT = _env("REGISTER_RATE_LIMIT", "20/hour")
    MESSAGE_RATE_LIMIT = _env("MESSAGE_RATE_LIMIT", "10/second")
    TYPING_RATE_LIMIT = _env("TYPING_RATE_LIMIT", "5/second")
    # Reverse proxies in front of the app (Heroku's router is one): X-Forwarded-* from that
    # many hops is trusted, so limits key on the real client address and cannot be spoofed.
    TRUSTED_PROXY_HOPS = _int("TRUSTED_PROXY_HOPS", 0)
    # Direct TLS for `python server.py` (`make run`), without a proxy in front.
    SSL_CERTFILE = _env("SSL_CERTFILE")
    SSL_KEYFILE = _env("SSL_KEYFILE")
    # argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST = _int("ARGON2_MEMORY_COST", 65536)
    ARGON2_PARALLELISM = _int("ARGON2_PARALLELISM", 4)


# A literal secret is only acceptable where nothing real is protected.
_LOCAL_SECRET = "local-development-secret-not-for-production-use"


class DevelopmentConfig(Config):
    """Local development: embedded database, permissive CORS, the browser demo."""

    DEMO_UI = _bool("DEMO_UI", True)

    JWT_SECRET_KEY = Config.JWT_SECRET_KEY or _LOCAL_SECRET


class TestingConfig(Config):
    """The test suite: same behaviour, cheaper password hashing."""

    APP_ENV = "testing"
    TESTING = True
    JWT_SECRET_KEY = Config.JWT_SECRET_KEY or _LOCAL_SECRET


class ProductionConfig(Config):
    """Production: secrets and the database must come from the environment."""

    APP_ENV = "production"
    HOST = _env("HOST", "0.0.0.0")
    CORS_ORIGINS = _list("CORS_ORIGINS", [])
    TRUSTED_PROXY_HOPS = _int("TRUSTED_PROXY_HOPS", 1)
    REQUIRED = ("JWT_SECRET_KEY", "MONGODB_URI")
    MIN_SECRET_LENGTH = 32


config_by_name = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name=None):
    """Return the config class for `name` (default: APP_ENV), refusing an incomplete production one."""
    name = name or _env("APP_ENV", "development")
    if name not in config_by_name:
        sys.exit(f"APP_ENV must be one of {', '.join(config_by_name)}, not {name!r}")
    config = config_by_name[name]
    if name == "production":
        missing = [var for var in config.REQUIRED if not getattr(config, var)]
        if missing:
            sys.exit(f"refusing to start in production: set {', '.join(missing)}")
        if len(config.JWT_SECRET_KEY) < config.MIN_SECRET_LENGTH:
            sys.exit(
                f"refusing to start in production: JWT_SECRET_KEY needs {config.MIN_SECRET_LENGTH} characters or more"
            )
        if "*" in config.CORS_ORIGINS:
            sys.exit("refusing to start in production: CORS_ORIGINS must list origins, not '*'")
    return config
