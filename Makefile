# The two commands: `make run` and `make test`. Both create the virtualenv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JS_STAMP := tests/js/node_modules/.installed

BENCH_STAMP := bench/node_modules/.installed

.PHONY: run cluster test lint format clean bench bootstrap-run bootstrap-test

# What pip and npm do not install: python3 for every target; node, npm, redis-server, chromium and
# openssl for the suite (Debian packages installed with apt-get as root, else the command is printed).
bootstrap-run:
	@scripts/bootstrap run

bootstrap-test:
	@scripts/bootstrap test

# Order-only: the check runs first every time, without making the virtualenv out of date.
$(STAMP): requirements.txt requirements-dev.txt | bootstrap-run
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# With MONGODB_URI unset the server starts the embedded SecantusDB, data under ./data/,
# listening on mongodb://127.0.0.1:27027/chat for jobs such as `python -m jobs.create_admin`.
run: bootstrap-run $(STAMP)
	EMBEDDED_DB_PATH=$${EMBEDDED_DB_PATH:-data/db} EMBEDDED_DB_PORT=$${EMBEDDED_DB_PORT:-27027} $(PY) server.py

# WEB server processes from the Procfile under honcho, the virtualenv's python first on PATH (ports
# PORT, PORT+1, ...; PORT defaults to 5000). They must share a database: set MONGODB_URI (a running
# `make run` serves mongodb://127.0.0.1:27027/chat), and REDIS_URL so that broadcasts cross them.
WEB ?= 2
cluster: bootstrap-run $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/honcho -f Procfile start -c web=$(WEB)

# The browser's socket.io-client, for the end-to-end test run by node.
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json | bootstrap-test
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# The suite in TEST_WORKERS processes (pytest-xdist; 0 runs it in pytest's own), a test file to each at a time so
# that a module's servers start once. Most tests spend their time waiting on servers: more workers than CI's 2 cores
# keep them busy (the whole suite on a 2-core machine, its servers forked: 265 s with 3 workers, 239 s with 4, 269 s
# with 6).
TEST_WORKERS ?= 4
test: bootstrap-test $(STAMP) $(JS_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fan-out benchmark against the Node peer; writes docs/bench-results.{json,md} and docs/bench-scaling.png.
$(BENCH_STAMP): bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) data .pytest_cache tests/js/node_modules bench/node_modules
