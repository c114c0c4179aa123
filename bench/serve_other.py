"""`ASYNC_MODE=gevent|threading python bench/serve_other.py`: the app on gevent's WSGI server or on
Werkzeug's, only to be measured against eventlet (docs/PERFORMANCE.md). Plain HTTP, no draining on
SIGTERM: production serves on eventlet (`python server.py`)."""

import os
import sys

if os.environ.get("ASYNC_MODE") == "gevent":
    # Before anything imports socket or threading, as server.py does for eventlet.
    from gevent import monkey

    monkey.patch_all()

import logging
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import ConfigError
from server import create_app, listen, start_cluster

log = logging.getLogger("chat")


def serve_other(app):
    """Serve on HOST:PORT with gevent's server or Werkzeug's threaded one, as ASYNC_MODE says."""
    start_cluster(app)
    listener = listen(app)
    log.info("serving (%s) on http://%s:%s", app.config["ASYNC_MODE"], app.config["HOST"], app.config["PORT"])
    if app.config["ASYNC_MODE"] == "gevent":
        from gevent.pywsgi import WSGIServer

        WSGIServer(listener, app, log=None).serve_forever()
    else:
        from werkzeug.serving import make_server

        make_server(app.config["HOST"], app.config["PORT"], app, threaded=True, fd=listener.fileno()).serve_forever()


def main():
    """Build the app and serve it on the other server; a refused setting is one line on stderr, exit 1."""
    try:
        app = create_app()
    except ConfigError as error:
        sys.exit(str(error))
    if app.config["ASYNC_MODE"] == "eventlet":
        sys.exit("ASYNC_MODE must be gevent or threading here; eventlet is served by server.py")
    serve_other(app)


if __name__ == "__main__":
    main()
