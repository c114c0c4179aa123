"""`make bench`: this server against a minimal Node + Socket.IO peer, on one fresh database daemon.

Scenarios (`SCENARIOS`; each run alternately against both servers, the median of --repeat runs kept):
- steady: 50 clients, 5 senders at 20 msg/s each; judge delivery latency.
- burst: 100 clients, 10 senders, each sending as soon as its previous ack arrives; judge deliveries/s.
- bigsteady: 1000 clients in one room, 2 senders at 20 msg/s each; judge latency and server CPU per delivery.
- bigburst: 1000 clients in one room, 2 senders not waiting for acks (a message a millisecond each).
- manyrooms: 2000 clients in 200 rooms of 10, one sender per room at 1 msg/s; judge latency and CPU.
- idle: 5000 idle connections (WebSocket, authenticated, 10 to a room) on a fresh process of each
  server (ours on a database of its own), all connecting at once; judge RSS per connection and how long the connect
  storm took.
- pair: burst and bigsteady again with two server processes behind Redis (clients split over both), on a database
  of their own.
- modes: steady and burst again on the other async modes (gevent, threading), one process and database each.
- scaling: 10, 100, 500, 1000 clients in a room; RSS per connection, latency and throughput.
- history: GET /api/messages, 50 a page, random `before` cursors, on a room of 100k messages.
- search: bench/search.py (its own database and server), GET /api/search over 100k messages.
Every fan-out run counts lost, duplicated and out-of-order deliveries (bench/loadgen.js).
`--scenarios bigsteady,bigburst` runs only those; `--quick` one short run of each but modes, scaling and history.
Writes docs/bench-results.json, docs/bench-results.md and (with scaling) docs/bench-scaling.png.
A scenario is a function registered with `@scenario(name)`: it gets the `Bench` (servers, users and
rooms, started as first needed) and returns its results; `report` functions turn them into lines.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pymongo
import requests
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.embedded import free_port, start_daemon, stop_daemon, with_database  # noqa: E402
from tests.support import Api, LiveServer, RedisServer, register  # noqa: E402

BENCH = ROOT / "bench"
DOCS = ROOT / "docs"


class NodePeer:
    """bench/ref_server.js on a free port."""

    def __init__(self, mongo_uri, log_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"PORT": str(self.port), "MONGODB_URI": mongo_uri, "PATH": "/usr/bin:/bin"}
        self.log = open(Path(log_dir) / "ref.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["node", "ref_server.js"], cwd=BENCH, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/socket.io/?EIO=4&transport=polling", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("ref_server.js did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def loadgen(urls, tokens, rooms, senders, messages, rate, hold=None, storm=False):
    """Run bench/loadgen.js (client i joins rooms[i % len(rooms)]); with `hold`, call hold() once every client has
    joined; with `storm`, every client connects at once, then joins at once."""
    config = {"urls": urls, "tokens": tokens, "rooms": rooms, "senders": senders, "messages": messages, "rate": rate,
              "hold": hold is not None, "storm": storm}  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(config, file)  # a thousand tokens do not fit on a command line
    proc = subprocess.Popen(["node", "loadgen.js", file.name], cwd=BENCH, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    if hold is not None:
        line = proc.stdout.readline()
        held = json.loads(line) if line else {"error": "loadgen.js ended before every client joined"}
        if "error" in held:
            proc.kill()
            raise RuntimeError(held["error"])
        hold(held)
        proc.stdin.write("go\n")
        proc.stdin.flush()
    lines = proc.communicate(timeout=900)[0].strip().splitlines()
    os.unlink(file.name)
    if not lines:
        raise RuntimeError(f"loadgen.js printed nothing (exit status {proc.returncode})")
    out = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(out["error"])
    return out


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


USERS = 1000  # registered on our server; more clients than that share them (MAX_SOCKETS_PER_USER allows 20 each)


class Bench:
    """What the scenarios share, each part started when first needed: the database, one process of this server,
    the Node peer, users and rooms on both; two processes behind Redis, the other async modes."""

    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-"))
        self.daemon, self.uri = start_daemon(args.db_path, log_path=str(self.work / "db.log"))
        # Tokens outlive a long run; positions in memory, as a server serving alone has them by default (the test
        # suite's servers, which tests/support.py also starts, have them off).
        self.env = {"LOG_LEVEL": "WARNING", "ACCESS_TOKEN_MINUTES": 600, "POSITIONS_IN_MEMORY": "true"}
        self.server = self.start_server()
        self.peer = NodePeer(with_database(self.uri, "ref"), self.work)
        self.processes = [self.server, self.peer]
        self._tokens, self._rooms, self._pair, self._modes, self.redis = {}, {}, None, None, None

    def start_server(self, database=None, **env):
        """One of our processes, on the single process's database or (`database`) one of its own."""
        uri = with_database(self.uri, database) if database else self.uri
        server = LiveServer(uri, self.work, **self.env, **env).start()
        server.database = database  # what its users and rooms are kept under: processes of a database share them
        if hasattr(self, "processes"):
            self.processes.append(server)
        return server

    def start_peer(self):
        peer = NodePeer(with_database(self.uri, "ref"), self.work)
        self.processes.append(peer)
        return peer

    def tokens(self, clients, users=USERS, server=None):
        """Access tokens for `clients` sockets on our server (the single process, or `server` with its database): one
        user each up to `users`, then shared."""
        server = server or self.server
        made = self._tokens.setdefault(server.database, [])
        missing = min(clients, users) - len(made)
        if missing > 0:
            api = Api(server.url)
            with ThreadPoolExecutor(8) as pool:
                made += [u.token for u in pool.map(lambda _: register(api), range(missing))]
        return [made[i % min(len(made), max(users, 1))] for i in range(clients)]

    def rooms(self, count, server=None):
        """`count` rooms on our server (ids; the single process's, or `server`'s), and as many names for the Node
        peer."""
        server = server or self.server
        if (server.database, count) not in self._rooms:
            token = self.tokens(1, server=server)[0]
            api = Api(server.url)
            name = lambda: {"name": f"bench-{ObjectId()}"}  # noqa: E731
            ids = [api.post("/api/rooms", token, json=name()).json()["id"] for _ in range(count)]
            self._rooms[server.database, count] = (ids, [f"bench-{count}-{i}" for i in range(count)])
        return self._rooms[server.database, count]

    def sides(self, clients, rooms=1, servers=None):
        """python (the single process, or `servers`, users and rooms on the first's database) and node: (urls, tokens,
        rooms, pids) for a fan-out run."""
        servers = servers or [self.server]
        ids, names = self.rooms(rooms, server=servers[0])
        return {
            "python": (
                [s.url for s in servers],
                self.tokens(clients, server=servers[0]),
                ids,
                [s.proc.pid for s in servers],
            ),
            "node": ([self.peer.url], [f"u{i}" for i in range(clients)], names, [self.peer.proc.pid]),
        }

    # The single process hands out positions from memory (no REDIS_URL): another process writing to its database
    # would make it and the other fall back to the rooms' counters, or (one with REDIS_URL) read the highest
    # stored position at every batch (model/message_log.py). The pair and each mode get a database of their own.

    def pair(self):
        """Two processes of our server behind a private Redis, sharing a database of their own."""
        if self._pair is None:
            self.redis = RedisServer(self.work)
            self.redis.start()
            self._pair = [self.start_server(database="pair", REDIS_URL=self.redis.url) for _ in range(2)]
            first = self._pair[0]
            warm_up([p.url for p in self._pair], self.tokens(100, server=first), self.rooms(1, server=first)[0])
        return self._pair

    def modes(self):
        """One process on each of the other async modes (--modes), each on a database of its own."""
        if self._modes is None:
            self._modes = {
                f"python ({m})": self.start_server(database=f"mode-{m}", script="bench/serve_other.py", ASYNC_MODE=m)
                for m in self.args.modes.split(",")
                if m
            }
            for mode in self._modes.values():
                warm_up([mode.url], self.tokens(100, server=mode), self.rooms(1, server=mode)[0])
        return self._modes

    def stop(self):
        for process in self.processes:
            process.stop()
        if self.redis is not None:
            self.redis.stop()
        stop_daemon(self.daemon)


def warm_up(urls, tokens, rooms):
    """Unmeasured: connection pools and caches grow to their working size."""
    loadgen(urls, tokens[:100], rooms, senders=10, messages=30, rate=0)


MEASURES = ("deliveriesPerS", "latP50", "latP99", "serverCpuUsPerDelivery", "databaseCpuUsPerDelivery", "machineBusy")


def median_run(runs):
    """The run with the median deliveries/s, each measure's own median, and every run's key figures."""
    runs = sorted(runs, key=lambda r: r["deliveriesPerS"])
    keys = ("deliveriesPerS", "latP50", "latP99", "lost", "dupes", "orderViolations", "serverCpuUsPerDelivery",
            "databaseCpuUsPerDelivery", "machineBusy")  # fmt: skip
    return {
        **runs[len(runs) // 2],
        "medians": {k: _median([r[k] for r in runs if r.get(k) is not None]) for k in MEASURES},
        "runs": [{k: r.get(k) for k in keys} for r in runs],
    }


def _median(values):
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else round((values[middle - 1] + values[middle]) / 2, 2)


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy():
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def measured_load(urls, tokens, rooms, load, pids, database):
    """loadgen, plus what the sending phase cost: the server's CPU per delivery, the database's (one daemon serves
    both servers, one at a time: what it spends in a run is that server's), and how busy the machine was."""
    before = {}

    def start(_):
        before.update(server=sum(map(cpu_seconds, pids)), database=cpu_seconds(database), machine=machine_busy())

    out = loadgen(urls, tokens, rooms, **load, hold=start)
    busy, total = (now - then for now, then in zip(machine_busy(), before["machine"], strict=True))
    server = sum(map(cpu_seconds, pids)) - before["server"]
    out["serverCpuUsPerDelivery"] = round(server / max(out["deliveries"], 1) * 1e6, 1)
    out["databaseCpuUsPerDelivery"] = round(
        (cpu_seconds(database) - before["database"]) / max(out["deliveries"], 1) * 1e6, 1
    )
    out["machineBusy"] = round(busy / total, 2)
    return out


def fanout(sides, load, repeat, database):
    """Run `load` on each side in turn, `repeat` times; each side's median run."""
    results = {name: [] for name in sides}
    for _ in range(repeat):
        for name, (urls, tokens, rooms, pids) in sides.items():
            for attempt in (1, 2):  # a load generator that dies (a shared machine) is run again, once
                try:
                    out = measured_load(urls, tokens, rooms, load, pids, database)
                    break
                except RuntimeError as error:
                    print(f"{name}: run failed ({error})", file=sys.stderr, flush=True)
                    if attempt == 2:
                        raise
            results[name].append(out)
    return {name: median_run(runs) for name, runs in results.items()}


def history(url, token, db, room, requests_count=2000):
    """Seed 100k messages over 30 days in a room; time random pages; show the query plan."""
    now = int(time.time())
    oids = sorted(ObjectId((now - 30 * 86400 + i * 26).to_bytes(4, "big") + os.urandom(8)) for i in range(100_000))
    user = ObjectId()
    for start in range(0, len(oids), 10_000):
        db.messages.insert_many(
            [{"_id": o, "room": ObjectId(room), "seq": start + i + 1, "user_id": user, "user_name": "seed",
              "message_body": "x" * 64, "time_stamp": o.generation_time, "deleted": False}
             for i, o in enumerate(oids[start : start + 10_000])]
        )  # fmt: skip
    db.rooms.update_one({"_id": ObjectId(room)}, {"$set": {"seq": len(oids)}})  # positions as the server gives them
    below = random.randrange(1000, len(oids))
    # The first query history() makes for a `before` page (model/message_scan.older): 51 positions below it.
    window = {"$gte": below - 51, "$lte": below - 1}
    plan = db.messages.find({"room": ObjectId(room), "seq": window}).sort("seq", -1).limit(51).explain()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def page(_):
        started = time.perf_counter()
        response = session.get(
            f"{url}/api/messages", params={"room": room, "limit": 50, "before": str(random.choice(oids))}
        )
        assert response.status_code == 200 and len(response.json()["messages"]) <= 50
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        timings = sorted(pool.map(page, range(requests_count)))
    seconds = time.perf_counter() - started
    return {
        "messages": len(oids),
        "requests": requests_count,
        "requestsPerS": round(requests_count / seconds, 1),
        "p50": round(timings[len(timings) // 2], 2),
        "p99": round(timings[int(len(timings) * 0.99)], 2),
        "plan": _stages(plan["queryPlanner"]["winningPlan"]),
        "docsExamined": plan.get("executionStats", {}).get("totalDocsExamined"),
    }


def _stages(plan):
    stage = plan.get("stage")
    index = f" {plan['indexName']}" if "indexName" in plan else ""
    inner = plan.get("inputStage")
    return f"{stage}{index}" + (f" <- {_stages(inner)}" if inner else "")


def _sample_rss(into, pid, _line):
    into.append(rss_kib(pid))


def scaling(server, peer, project_tokens, project_room, sizes):
    rows = []
    for clients in sizes:
        for name, (url, pid, tokens, room) in {
            "python": (server.url, server.proc.pid, project_tokens, [project_room]),
            "node": (peer.url, peer.proc.pid, [f"u{i}" for i in range(clients)], ["bench-scale"]),
        }.items():
            before, during = rss_kib(pid), []
            out = loadgen([url], tokens[:clients], room, 2, 20, 0, hold=partial(_sample_rss, during, pid))
            per_connection = round((during[0] - before) / clients, 1)
            figures = {k: out[k] for k in ("deliveriesPerS", "latP50", "latP99", "lost", "dupes")}
            rows.append({"server": name, "clients": clients, "rssPerConnectionKiB": per_connection, **figures})
            print(json.dumps(rows[-1]), flush=True)
    return rows


# Fan-out loads: clients (in `rooms` rooms), senders x messages at `rate` msg/s each (0: each waits for its ack).
LOADS = {
    "steady": {"clients": 50, "rooms": 1, "load": {"senders": 5, "messages": 60, "rate": 20}},
    "burst": {"clients": 100, "rooms": 1, "load": {"senders": 10, "messages": 300, "rate": 0}},
    "bigsteady": {"clients": 1000, "rooms": 1, "load": {"senders": 2, "messages": 100, "rate": 20}},
    # Senders that do not wait for acks: a message every millisecond each.
    "bigburst": {"clients": 1000, "rooms": 1, "load": {"senders": 2, "messages": 200, "rate": 1000}},
    # One sender per room (the first 200 clients sit in rooms 0..199).
    "manyrooms": {"clients": 2000, "rooms": 200, "load": {"senders": 200, "messages": 20, "rate": 1}},
}
SCENARIOS = {}  # name -> function(bench) -> results, in the order they run
QUICK_SKIPS = ("modes", "scaling", "history", "search")


def scenario(name):
    """Register a scenario: `run(bench)` returns what results.json keeps under `name`."""

    def register(run):
        SCENARIOS[name] = run
        return run

    return register


def load_of(bench, name):
    """A LOADS entry, messages halved with --quick."""
    spec = LOADS[name]
    load = dict(spec["load"], messages=spec["load"]["messages"] // (2 if bench.args.quick else 1))
    return spec["clients"], spec["rooms"], load


def fanout_scenario(name, modes=False):
    """A LOADS entry run against both servers (and with `modes`, the other async modes when --scenarios has them)."""

    def run(bench):
        clients, rooms, load = load_of(bench, name)
        sides = bench.sides(clients, rooms)
        if modes and "modes" in bench.args.scenarios:
            sides.update({n: bench.sides(clients, rooms, [m])["python"] for n, m in bench.modes().items()})
        return fanout(sides, load, bench.args.repeat, bench.daemon.pid)

    return scenario(name)(run)


fanout_scenario("steady", modes=True)
fanout_scenario("burst", modes=True)
fanout_scenario("bigsteady")
fanout_scenario("bigburst")
fanout_scenario("manyrooms")


@scenario("pair")
def pair(bench):
    """burst and bigsteady with two of our processes behind Redis, clients split over both; the Node peer alone."""
    out = {}
    for name in ("burst", "bigsteady"):
        clients, rooms, load = load_of(bench, name)
        sides = bench.sides(clients, rooms, bench.pair())
        sides["python x2 (redis)"] = sides.pop("python")
        out[name] = fanout(sides, load, bench.args.repeat, bench.daemon.pid)
    return out


def _settled_rss(into, pid, line):
    time.sleep(2)  # what the joins left behind settles
    into.update(line, rss=rss_kib(pid))


@scenario("idle")
def idle(bench):
    """`--idle` connections at once on a fresh process of each server, 10 to a room; RSS per connection once all
    have joined (against the process after an unmeasured warm-up), and how long connecting and joining took."""
    clients = bench.args.idle
    runs = {"python": [], "node": []}
    for _ in range(bench.args.repeat):
        for name in runs:
            # A connection not authenticated within AUTH_TIMEOUT_SECONDS (10) is closed: in a storm of thousands on a
            # busy machine some wait longer than that for their turn, and would never connect. Alone on a database
            # of its own, as a lone process serves: beside the single process, which holds its rooms' positions,
            # each first join of a room would read the room's highest stored message (the note above Bench.pair).
            # Ten sockets a user (two tabs in five rooms, say): registering is not what is measured.
            if name == "python":
                process = bench.start_server(database="idle", AUTH_TIMEOUT_SECONDS=600)
                ids, names = bench.rooms(clients // 10, server=process)
                tokens, rooms = bench.tokens(clients, users=clients // 10, server=process), ids
            else:  # after ours (`runs` is in that order): the same rooms, by their names
                process = bench.start_peer()
                tokens, rooms = [f"u{i}" for i in range(clients)], names
            warm_up([process.url], tokens, rooms)
            before, held = rss_kib(process.proc.pid), {}
            settled = partial(_settled_rss, held, process.proc.pid)
            loadgen([process.url], tokens, rooms, 0, 0, 0, hold=settled, storm=True)
            process.stop()
            runs[name].append({"clients": clients, "connectS": held["connectS"], "joinS": held["joinS"],
                               "rssPerConnectionKiB": round((held["rss"] - before) / clients, 1)})  # fmt: skip
            print(name, json.dumps(runs[name][-1]), flush=True)
    keys = ("rssPerConnectionKiB", "connectS", "joinS")
    return {name: {"medians": {k: _median([r[k] for r in rs]) for k in keys}, "runs": rs} for name, rs in runs.items()}


@scenario("modes")
def modes(bench):
    """Run by steady and burst (their results carry the modes); here only when neither runs."""
    if not {"steady", "burst"} & set(bench.args.scenarios):
        raise SystemExit("--scenarios modes needs steady or burst (the modes run their loads)")
    return None


@scenario("scaling")
def scaling_scenario(bench):
    sizes = [int(s) for s in bench.args.sizes.split(",")]
    ids, _ = bench.rooms(1)
    return scaling(bench.server, bench.peer, bench.tokens(max(sizes)), ids[0], sizes)


@scenario("history")
def history_scenario(bench):
    # Last: seeding 100k messages keeps the shared daemon busy for a while afterwards.
    token = bench.tokens(1)[0]
    with pymongo.MongoClient(bench.uri) as client:
        room = Api(bench.server.url).post("/api/rooms", token, json={"name": "history"}).json()["id"]
        return history(bench.server.url, token, client.get_default_database(), room)


@scenario("search")
def search_scenario(bench):
    """bench/search.py, on a database and server of its own: GET /api/search over 100k messages."""
    report = subprocess.run([sys.executable, str(BENCH / "search.py")], check=True, capture_output=True, text=True)
    print(report.stdout, end="")
    return {"report": report.stdout.splitlines()}


def raise_open_files():
    """A thousand clients are a thousand descriptors in the load generator and in each server: soft limit to hard."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 4096:
        print(f"open files limited to {hard}: 1000-client scenarios need more (ulimit -Hn)", file=sys.stderr)


def options():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ",".join(SCENARIOS)
    parser.add_argument("--repeat", type=int, default=None, help="runs per scenario and server (3; 1 with --quick)")
    parser.add_argument("--scenarios", default=None, help=f"comma-separated, of {names} (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="one run of each but modes, scaling and history, half the messages"
    )
    parser.add_argument("--idle", type=int, default=None, help="connections of the idle scenario (5000; 1000 quick)")
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--modes", default="gevent,threading", help="other ASYNC_MODEs to run steady and burst on")
    parser.add_argument("--out", default=str(DOCS))
    parser.add_argument(
        "--db-path", default=":memory:", help="the database's storage: a directory keeps a journal, as in production"
    )
    args = parser.parse_args()
    default = [name for name in SCENARIOS if not (args.quick and name in QUICK_SKIPS)]
    args.scenarios = args.scenarios.split(",") if args.scenarios else default
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.idle = args.idle or (1000 if args.quick else 5000)
    return args


def main():
    args = options()
    raise_open_files()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()} cores", "repeat": args.repeat,
               "scenarios": args.scenarios, "quick": args.quick, "load": os.getloadavg()[0]}  # fmt: skip
    bench = Bench(args)
    try:
        warm_up([bench.server.url], bench.tokens(100), bench.rooms(1)[0])
        warm_up([bench.peer.url], [f"u{i}" for i in range(100)], bench.rooms(1)[1])
        for name, run in SCENARIOS.items():
            if name in args.scenarios:
                result = run(bench)
                if result is not None:
                    results[name] = result
                    print(name, json.dumps(result), flush=True)
                    write(dict(results, loadAfter=os.getloadavg()[0]), Path(args.out))  # a long run keeps its parts
    finally:
        bench.stop()


def write(results, out):
    out.mkdir(exist_ok=True)
    (out / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    parts = results.get("parts")  # results merged from several runs of the bench, each with its own
    lines = [
        f"Measured on {results['machine']} in {len(parts)} parts:"
        if parts
        else f"Measured {results['date']} on {results['machine']} (median of {results['repeat']} runs; load average "
        f"{results['load']:.1f} at the start, {results['loadAfter']:.1f} at the end).",
        *[
            f"- {', '.join(part['scenarios'])}: started {part['date']}, median of {part['repeat']} runs, load average "
            f"{part['load']:.1f} -> {part['loadAfter']:.1f}"
            for part in parts or ()
        ],
        "",
        *_targets(results),
    ]
    for name, title in (("burst", "Burst"), ("bigsteady", "Big room steady"), ("bigburst", "Big room burst"),
                        ("manyrooms", "Many rooms")):  # fmt: skip
        if name in results:
            lines += ["", *_fanout_table(results[name], title, results["machine"])]
    for name, title in (("burst", "Two processes, burst"), ("bigsteady", "Two processes, big room steady")):
        if name in results.get("pair", {}):
            lines += ["", *_fanout_table(results["pair"][name], title, results["machine"])]
    if "idle" in results:
        lines += [
            "",
            f"Idle connections ({results['idle']['python']['runs'][0]['clients']} at once, a fresh process each run):",
            "",
            "| server | RSS per connection (KiB) | connect storm (s) | joins (s) | runs: RSS per connection |",
            "|---|---|---|---|---|",
            *[
                f"| {name} | {r['medians']['rssPerConnectionKiB']} | {r['medians']['connectS']} | "
                f"{r['medians']['joinS']} | {', '.join(str(run['rssPerConnectionKiB']) for run in r['runs'])} |"
                for name, r in results["idle"].items()
            ],
        ]
    if "history" in results:
        hist = results["history"]
        lines += ["", f"History: {hist['requestsPerS']} requests/s, p50 {hist['p50']} ms, p99 {hist['p99']} ms, 50 a "
                      f"page of {hist['messages']} messages; plan `{hist['plan']}`, {hist['docsExamined']} documents "
                      "examined."]  # fmt: skip
    if "scaling" in results:
        lines += [
            "",
            "| server | clients | RSS per connection (KiB) | deliveries/s | latency p50 / p99 (ms) |",
            "|---|---|---|---|---|",
            *[
                f"| {r['server']} | {r['clients']} | {r['rssPerConnectionKiB']} | {r['deliveriesPerS']} | "
                f"{r['latP50']} / {r['latP99']} |"
                for r in results["scaling"]
            ],
        ]
        plot(results["scaling"], out / "bench-scaling.png")
    (out / "bench-results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _ratio(scenario, name, key):
    mine, node = scenario[name]["medians"][key], scenario["node"]["medians"][key]
    return f"{mine / node:.2f}x" if mine is not None and node else "-"


def _fanout_row(title, scenario, name, keys, target):
    """A summary row: our medians, Node's, their ratios, the target."""
    figures = lambda n: " / ".join(str(scenario[n]["medians"][k]) for k in keys)  # noqa: E731
    ratios = ", ".join(_ratio(scenario, name, k) for k in keys)
    return f"| {title} | {figures(name)} | {figures('node')} | {ratios} | {target} |"


P50, P99, CPU, RATE = "latP50", "latP99", "serverCpuUsPerDelivery", "deliveriesPerS"
# The targets of issue 17: scenario, title, the measures compared, the target.
TARGETS = (
    ("bigsteady", "big room steady: p50 / p99 (ms) / CPU per delivery (µs)", (P50, P99, CPU),
     "p50, p99 at most 1.0x; CPU at most 0.5x"),
    ("bigburst", "big room burst: deliveries/s", (RATE,), "at least 1.5x"),
    ("manyrooms", "many rooms: p99 (ms) / CPU per delivery (µs)", (P99, CPU), "p99, CPU at most 1.0x"),
    ("steady", "steady: p50 / p99 (ms)", (P50, P99), "p50 at most 1.0x"),
    ("burst", "burst: deliveries/s / CPU per delivery (µs)", (RATE, CPU), "deliveries/s no worse than 1.24x"),
)  # fmt: skip


def _targets(results):
    """The summary table: each scenario's figures for us and the Node peer, their ratio and the target."""
    rows = [_fanout_row(title, results[name], "python", keys, target)
            for name, title, keys, target in TARGETS if name in results]  # fmt: skip
    if "idle" in results:
        title = "idle connections: RSS per connection (KiB) / connect storm (s)"
        keys = ("rssPerConnectionKiB", "connectS")
        rows.append(_fanout_row(title, results["idle"], "python", keys, "RSS at most 1.0x, storm at most 1.5x"))
    for name, target in (("burst", "deliveries/s at least 1.0x (earlier target)"), ("bigsteady", "reported")):
        if name in results.get("pair", {}):
            title = f"two processes + Redis, {name}: deliveries/s / p50 / p99 (ms) / CPU per delivery (µs)"
            rows.append(_fanout_row(title, results["pair"][name], "python x2 (redis)", (RATE, P50, P99, CPU), target))
    steady, burst = results.get("steady", {}), results.get("burst", {})
    for name in (n for n in steady if n.startswith("python (") and n in burst):  # a mode's row needs both runs
        rows.append(
            f"| {name}: steady p99 (ms) / burst deliveries/s | {steady[name]['medians']['latP99']} / "
            f"{burst[name]['medians']['deliveriesPerS']} | {steady['node']['medians']['latP99']} / "
            f"{burst['node']['medians']['deliveriesPerS']} | p99 {_ratio(steady, name, P99)}, burst "
            f"{_ratio(burst, name, RATE)} | measured (eventlet stays) |"
        )
    fanouts = [results[n] for n in LOADS if n in results] + list(results.get("pair", {}).values())
    runs = [run for scenario in fanouts for side in scenario.values() for run in side["runs"]]
    runs += results.get("scaling", [])
    lost = sum(r["lost"] + r["dupes"] for r in runs)
    disorder = sum(r.get("orderViolations") or 0 for r in runs)
    rows.append(f"| lost + duplicated deliveries, all runs | {lost} | | | 0 |")
    rows.append(
        f"| order violations (neighbouring deliveries out of the process's order), all runs | {disorder} | | | 0 |"
    )
    return ["| scenario | python | node | ratio | target |", "|---|---|---|---|---|", *rows]


def _figures(result):
    m = result["medians"]
    return f"{m['latP50']} / {m['latP99']}, {m['serverCpuUsPerDelivery']}"


def _fanout_table(scenario, title, machine):
    return [
        f"{title}, CPU while sending ({machine}, shared by servers, load generator and database), medians of the runs "
        "(each figure on its own):",
        "",
        "| server | deliveries/s | delivery p50 / p99 (ms) | server CPU per delivery (µs) "
        "| database CPU per delivery (µs) | machine busy | runs (µs) |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {r['medians']['deliveriesPerS']} | {r['medians']['latP50']} / {r['medians']['latP99']} | "
            f"{r['medians']['serverCpuUsPerDelivery']} | {r['medians']['databaseCpuUsPerDelivery']} | "
            f"{r['medians']['machineBusy']:.0%} | "
            f"{', '.join(str(run['serverCpuUsPerDelivery']) for run in r['runs'])} |"
            for name, r in scenario.items()
        ],
    ]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4))
    for server, color in (("python", "tab:blue"), ("node", "tab:orange")):
        mine = [r for r in rows if r["server"] == server]
        clients = [r["clients"] for r in mine]
        lat.plot(clients, [r["latP99"] for r in mine], color=color, marker="o", label=f"{server} p99")
        lat.plot(clients, [r["latP50"] for r in mine], color=color, marker=".", linestyle="--", label=f"{server} p50")
        thr.plot(clients, [r["deliveriesPerS"] for r in mine], color=color, marker="o", label=server)
    for axis, title in ((lat, "delivery latency (ms)"), (thr, "deliveries per second")):
        axis.set_xscale("log")
        axis.set_xlabel("clients in the room")
        axis.set_title(title)
        axis.legend()
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
