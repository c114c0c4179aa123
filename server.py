"""The chat service: `create_app()` wires the parts; `python server.py` serves them on eventlet."""

if __name__ == "__main__":
    # Before anything imports socket or threading, so the database driver cooperates with eventlet.
    import warnings

    # eventlet is the stack's choice; its import-time deprecation banner is noise in every log.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import logging
import sys

from flask import Flask
from flask_cors import CORS

import model
from config import ConfigError, load_config
from config.logs import configure_logging
from middleware.errors import register_error_handlers
from middleware.request_log import register_request_logging
from middleware.security import handshake_origins, register_security
from model.embedded import EmbeddedDbError
from routes import register_blueprints
from services import cluster, health, metrics
from services.mentions import key_old_mentions
from services.rooms import ensure_general_room
from services.search import index_old_messages
from sockets import register_socket_handlers
from utils import gc_policy, heap, transport
from utils.extensions import jwt, limiter, socketio
from utils.metrics import CommandTimer

log = logging.getLogger("chat")


def create_app(config_name=None, **overrides):
    """Build the Flask app from the environment as it is now and `overrides` (setting names): config,
    logs, extensions, database, HTTP and Socket.IO handlers. Raise ConfigError for a refused setting."""
    app = Flask(__name__)
    register_config(app, config_name, overrides)
    register_logging(app)
    log_proxy_trust(app)
    register_sentry(app)
    register_extensions(app)
    register_metrics(app)
    register_database(app)
    register_request_logging(app)
    register_error_handlers(app)
    register_blueprints(app)
    register_socket_handlers(app, socketio)
    register_security(app)
    return app


def register_config(app, config_name, overrides):
    app.config.from_mapping(load_config(config_name, **overrides))
    app.json.sort_keys = False


def register_logging(app):
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def log_proxy_trust(app):
    """Say at start-up that a process serving TLS itself trusts no X-Forwarded-* header, or warn that it does."""
    if not app.config["SSL_CERTFILE"]:
        return
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        log.warning(
            "TRUSTED_PROXY_HOPS=%s with SSL_CERTFILE: direct TLS means no proxy in front, "
            "so any client can forge the address that rate limits key on (set 0)",
            hops,
        )
    else:
        log.info("SSL_CERTFILE is set: serving TLS directly, so X-Forwarded-* is not trusted (TRUSTED_PROXY_HOPS=0)")


def register_sentry(app):
    if app.config["SENTRY_DSN"]:
        import sentry_sdk
        from sentry_sdk.integrations.flask import FlaskIntegration

        sentry_sdk.init(dsn=app.config["SENTRY_DSN"], integrations=[FlaskIntegration()], send_default_pii=False)


def register_extensions(app):
    origins = app.config["CORS_ORIGINS"]
    CORS(app, resources={r"/api/*": {"origins": origins}}, expose_headers=["X-Request-ID", "Retry-After"])
    jwt.init_app(app)
    limiter.init_app(app)
    socketio.init_app(
        app,
        async_mode=app.config["ASYNC_MODE"],
        client_manager=transport.client_manager(app.config),
        cors_allowed_origins=handshake_origins(origins),
        max_http_buffer_size=app.config["SOCKET_MAX_BUFFER"],
    )


def register_metrics(app):
    """This process's metrics registry, served at GET /metrics (and on METRICS_PORT by `serve`)."""
    app.extensions["metrics"] = metrics.registry(app.config["METRICS_PROCESS"])


def register_database(app):
    # Command round trips into `chat_db_command_seconds`: the driver times them, one observation each.
    model.init_db(app, listeners=[CommandTimer()])
    with app.app_context():
        ensure_general_room()
        index_old_messages()
        key_old_mentions()  # after: it adds to the search keys that gives


def start_cluster(app):
    """A serving process (not a job) takes part in the cluster: control messages, presence, liveness."""
    app.extensions["cluster"] = cluster.start(app)


def serve(app):
    """Serve on HOST:PORT with eventlet's WSGI server, acks not delayed by Nagle's algorithm.

    SIGTERM (a deploy, a scale-down) drains: readiness answers 503 at once and the process
    keeps serving for DRAIN_GRACE_SECONDS, so a load balancer stops sending it connections;
    then sockets are told to go (clients reconnect to another process), no connection is
    accepted any more, requests in flight finish, and the process exits within
    SHUTDOWN_TIMEOUT seconds of the signal, through SystemExit so atexit hooks run (the
    embedded database stops cleanly).
    """
    import signal

    import eventlet
    import eventlet.wsgi

    if app.config["ASYNC_MODE"] != "eventlet":
        raise ConfigError("server.py serves on eventlet; ASYNC_MODE=gevent and threading run with bench/serve_other.py")
    listener = listen(app)
    start_cluster(app)
    serve_metrics_port(app)
    scheme = "http"
    if app.config["SSL_CERTFILE"]:
        listener = eventlet.wrap_ssl(
            listener, certfile=app.config["SSL_CERTFILE"], keyfile=app.config["SSL_KEYFILE"], server_side=True
        )
        scheme = "https"
    main_greenlet = eventlet.getcurrent()

    def drain():
        if not health.start_draining(app):  # first: readiness answers 503 from now on
            return  # a second SIGTERM (honcho and a signal to the process group both send one)
        log.info("SIGTERM: draining")
        # A hard stop for requests that do not finish in time.
        eventlet.spawn_after(app.config["SHUTDOWN_TIMEOUT"], main_greenlet.throw, SystemExit(0))
        eventlet.sleep(app.config["DRAIN_GRACE_SECONDS"])  # still accepting, while the balancer notices
        cluster.stop(app.extensions["cluster"])
        # Once the accept loop is left, a closed listener refuses new connections instead of queueing them.
        eventlet.spawn_n(listener.close)
        main_greenlet.throw(SystemExit(0))  # leaves the accept loop; the server then waits for requests in flight

    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(drain))
    gc_policy.install(app.config["GC_THAW_SECONDS"])
    heap.start(socketio, app.config["HEAP_TRIM_MB"])
    log_addresses(app, scheme)
    try:
        eventlet.wsgi.server(
            listener,
            app,
            log_output=False,
            custom_pool=transport.connection_pool(socketio.server, app.config["MAX_CONNECTIONS"]),
            socket_timeout=app.config["HTTP_TIMEOUT_SECONDS"],
        )
    finally:
        listener.close()
        cluster.release(app.config["DB_TIMEOUT_MS"] / 1000)
    log.info("stopped")


def log_addresses(app, scheme):
    """Say where the server, its API docs and its demo are (a wildcard HOST shown as 127.0.0.1)."""
    host = app.config["HOST"]
    base = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{app.config['PORT']}"
    log.info("serving on %s", base)
    log.info("API docs: %s/api/docs/", base)
    if app.config["DEMO_UI"]:
        log.info("demo: %s/demo", base)


def listen(app):
    """The listening socket, with TCP_NODELAY (accepted sockets inherit it on Linux) and open files to spare;
    ConfigError when HOST:PORT cannot be bound (busy, or privileged)."""
    import errno
    import os
    import resource
    import socket

    # Every connection is a file descriptor: a default soft limit of 1024 would stop the
    # process long before MAX_CONNECTIONS, so take the hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = app.config["HOST"], app.config["PORT"]
    try:
        listener = socket.create_server((host, port), backlog=2048)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)  # without the repeated address
        hint = " (another server runs there: stop it or set PORT)" if error.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def serve_metrics_port(app):
    """With METRICS_PORT: GET /metrics alone on a listener of its own (METRICS_HOST), served by a greenlet."""
    import errno

    import eventlet
    import eventlet.wsgi

    from controller.metrics import internal_app

    host, port = app.config["METRICS_HOST"], app.config["METRICS_PORT"]
    if not port:
        return
    try:
        listener = eventlet.listen((host, port))
    except OSError as error:
        reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be opened ({error.strerror})"
        raise ConfigError(f"METRICS_PORT {port} on {host} {reason}") from None
    eventlet.spawn_n(
        eventlet.wsgi.server,
        listener,
        internal_app(app),
        log_output=False,
        socket_timeout=app.config["HTTP_TIMEOUT_SECONDS"],
    )
    log.info("metrics on http://%s:%s/metrics", host, port)


def main():
    """`python server.py`: build the app and serve it; a refused setting, a busy port or an embedded database
    that cannot start is one line on stderr, exit 1."""
    try:
        serve(create_app())
    except (ConfigError, EmbeddedDbError) as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
