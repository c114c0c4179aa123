"""`make bench`: this server against a minimal Node + Socket.IO peer, on one fresh database daemon.

Scenarios (each run alternately against both servers, the median of --repeat runs kept):
- steady: 50 clients, 5 senders at 20 msg/s each; judge delivery latency.
- burst: 100 clients, 10 senders, each sending as soon as its previous ack arrives; judge deliveries/s.
- burst with two server processes behind Redis (clients spread over both).
- steady and burst again on the other async modes (gevent, threading), one process each.
- history: GET /api/messages, 50 a page, random `before` cursors, on a room of 100k messages.
- scaling: 10, 100, 500, 1000 clients in a room; RSS per connection, latency and throughput.
- big room steady (bigsteady): 1000 clients, 2 senders at 20 msg/s each; judge latency and server CPU per delivery.
- big room burst (bigburst): 1000 clients, 2 senders not waiting for acks (a message a millisecond each).
- search: bench/search.py (its own database and server), GET /api/search over 100k messages.
Every fan-out run counts lost, duplicated and out-of-order deliveries (bench/loadgen.js).
`--scenarios bigsteady,bigburst` runs only those; `--quick` one short run of steady, burst and the big room.
Writes docs/bench-results.json, docs/bench-results.md and (with scaling) docs/bench-scaling.png.
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


def loadgen(urls, tokens, room, senders, messages, rate, hold=None):
    """Run bench/loadgen.js; with `hold`, call hold() once every client has joined."""
    config = {"urls": urls, "tokens": tokens, "room": room, "senders": senders, "messages": messages, "rate": rate,
              "hold": hold is not None}  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(config, file)  # a thousand tokens do not fit on a command line
    proc = subprocess.Popen(["node", "loadgen.js", file.name], cwd=BENCH, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    if hold is not None:
        json.loads(proc.stdout.readline())
        hold()
        proc.stdin.write("go\n")
        proc.stdin.flush()
    lines = proc.communicate(timeout=600)[0].strip().splitlines()
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


class ProjectSide:
    """Users and a room on our server; tokens for the load generator."""

    def __init__(self, url, users):
        api = Api(url)
        with ThreadPoolExecutor(8) as pool:
            self.tokens = [u.token for u in pool.map(lambda _: register(api), range(users))]
        room = api.post("/api/rooms", self.tokens[0], json={"name": f"bench-{ObjectId()}"}).json()
        self.room = room["id"]


MEASURES = ("deliveriesPerS", "latP50", "latP99", "serverCpuUsPerDelivery", "machineBusy")


def median_run(runs):
    """The run with the median deliveries/s, each measure's own median, and every run's key figures."""
    runs = sorted(runs, key=lambda r: r["deliveriesPerS"])
    keys = ("deliveriesPerS", "latP50", "latP99", "lost", "dupes", "orderViolations", "serverCpuUsPerDelivery",
            "machineBusy")  # fmt: skip
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


def measured_load(urls, tokens, room, load, pids):
    """loadgen, plus what the sending phase cost: the server's CPU per delivery and how busy the machine was."""
    before = {}

    def start():
        before.update(server=sum(map(cpu_seconds, pids)), machine=machine_busy())

    out = loadgen(urls, tokens, room, **load, hold=start)
    busy, total = (now - then for now, then in zip(machine_busy(), before["machine"], strict=True))
    server = sum(map(cpu_seconds, pids)) - before["server"]
    out["serverCpuUsPerDelivery"] = round(server / max(out["deliveries"], 1) * 1e6, 1)
    out["machineBusy"] = round(busy / total, 2)
    return out


def fanout(sides, scenario, repeat):
    results = {name: [] for name in sides}
    for _ in range(repeat):
        for name, (urls, tokens, room, pids) in sides.items():
            for attempt in (1, 2):  # a load generator that dies (a shared machine) is run again, once
                try:
                    out = measured_load(urls, tokens[: scenario["clients"]], room, scenario["load"], pids)
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


def _sample_rss(into, pid):
    into.append(rss_kib(pid))


def scaling(server, peer, project_tokens, project_room, sizes):
    rows = []
    for clients in sizes:
        for name, (url, pid, tokens, room) in {
            "python": (server.url, server.proc.pid, project_tokens, project_room),
            "node": (peer.url, peer.proc.pid, [f"u{i}" for i in range(clients)], "bench-scale"),
        }.items():
            before, during = rss_kib(pid), []
            out = loadgen([url], tokens[:clients], room, 2, 20, 0, hold=partial(_sample_rss, during, pid))
            per_connection = round((during[0] - before) / clients, 1)
            figures = {k: out[k] for k in ("deliveriesPerS", "latP50", "latP99", "lost", "dupes")}
            rows.append({"server": name, "clients": clients, "rssPerConnectionKiB": per_connection, **figures})
            print(json.dumps(rows[-1]), flush=True)
    return rows


SCENARIOS = {
    # name: clients, and the load: senders x messages at `rate` msg/s each (0: each waits for its previous ack)
    "steady": {"clients": 50, "load": {"senders": 5, "messages": 60, "rate": 20}},
    "burst": {"clients": 100, "load": {"senders": 10, "messages": 300, "rate": 0}},
    "bigsteady": {"clients": 1000, "load": {"senders": 2, "messages": 100, "rate": 20}},
    # Senders that do not wait for acks: a message every millisecond each.
    "bigburst": {"clients": 1000, "load": {"senders": 2, "messages": 200, "rate": 1000}},
}
ALL = ("steady", "burst", "pair", "modes", "bigsteady", "bigburst", "scaling", "history", "search")
QUICK = ("steady", "burst", "bigsteady", "bigburst")


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
    parser.add_argument("--repeat", type=int, default=None, help="runs per scenario and server (3; 1 with --quick)")
    parser.add_argument("--scenarios", default=None, help=f"comma-separated, of {','.join(ALL)} (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"one run of {','.join(QUICK)}, half as many messages")
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--modes", default="gevent,threading", help="other ASYNC_MODEs to run steady and burst on")
    parser.add_argument("--out", default=str(DOCS))
    parser.add_argument(
        "--db-path", default=":memory:", help="the database's storage: a directory keeps a journal, as in production"
    )
    args = parser.parse_args()
    args.scenarios = (args.scenarios or ",".join(QUICK if args.quick else ALL)).split(",")
    unknown = set(args.scenarios) - set(ALL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def main():
    args = options()
    raise_open_files()
    chosen = set(args.scenarios)
    if "search" in chosen:  # prints its own figures
        subprocess.run([sys.executable, str(BENCH / "search.py")], check=True)
        chosen.discard("search")
        if not chosen:
            return
    scenarios = {name: dict(s, load=dict(s["load"])) for name, s in SCENARIOS.items()}
    if args.quick:
        for scenario in scenarios.values():
            scenario["load"]["messages"] //= 2
    sizes = [int(s) for s in args.sizes.split(",")] if "scaling" in chosen else []
    users = max([*sizes, *(scenarios[name]["clients"] for name in chosen & set(scenarios)), 100])
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    daemon, uri = start_daemon(args.db_path, log_path=str(work / "db.log"))
    redis = RedisServer(work)
    env = {"LOG_LEVEL": "WARNING"}
    server = LiveServer(uri, work, **env).start()
    peer = NodePeer(with_database(uri, "ref"), work)
    pair, modes = [], {}
    if "pair" in chosen:
        redis.start()
        pair = [LiveServer(uri, work, REDIS_URL=redis.url, **env).start() for _ in range(2)]
    if "modes" in chosen:
        modes = {
            f"python ({m})": LiveServer(uri, work, script="bench/serve_other.py", ASYNC_MODE=m, **env).start()
            for m in args.modes.split(",")
            if m
        }
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()} cores", "repeat": args.repeat,
               "scenarios": args.scenarios, "quick": args.quick}  # fmt: skip
    try:
        side = ProjectSide(server.url, users)
        ref_tokens = [f"u{i}" for i in range(users)]
        sides = {
            "python": ([server.url], side.tokens, side.room, [server.proc.pid]),
            "node": ([peer.url], ref_tokens, "bench", [peer.proc.pid]),
        }
        mode_sides = {name: ([mode.url], side.tokens, side.room, [mode.proc.pid]) for name, mode in modes.items()}
        pair_side = {"python x2 (redis)": ([p.url for p in pair], side.tokens, side.room, [p.proc.pid for p in pair])}
        for urls, tokens, room, _ in (*sides.values(), *mode_sides.values(), *(pair_side.values() if pair else ())):
            # Unmeasured: connection pools and caches grow to their working size on either side.
            loadgen(urls, tokens[:100], room, senders=10, messages=30, rate=0)
        for name in ("steady", "burst", "bigsteady", "bigburst"):
            runs_on = {**sides, **(mode_sides if name in ("steady", "burst") else {})}
            if name in chosen or (name == "burst" and "pair" in chosen) or (name in ("steady", "burst") and modes):
                results[name] = fanout(runs_on, scenarios[name], args.repeat)
            if name == "burst" and pair:
                results[name].update(fanout(pair_side, scenarios[name], args.repeat))
            if name in results:
                print(name, json.dumps(results[name]), flush=True)
        if sizes:
            results["scaling"] = scaling(server, peer, side.tokens, side.room, sizes)
        if "history" in chosen:
            # Last: seeding 100k messages keeps the shared daemon busy for a while afterwards.
            with pymongo.MongoClient(uri) as client:
                history_room = Api(server.url).post("/api/rooms", side.tokens[0], json={"name": "history"}).json()["id"]
                results["history"] = history(server.url, side.tokens[0], client.get_default_database(), history_room)
            print("history", json.dumps(results["history"]), flush=True)
    finally:
        for proc in (server, *pair, *modes.values()):
            proc.stop()
        peer.stop()
        redis.stop()
        stop_daemon(daemon)
    write(results, Path(args.out))


def write(results, out):
    out.mkdir(exist_ok=True)
    (out / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"Measured {results['date']} on {results['machine']} (median of {results['repeat']} runs).", ""]
    lines += _targets(results)
    for name, title in (("burst", "Burst"), ("bigsteady", "Big room steady"), ("bigburst", "Big room burst")):
        if name in results:
            lines += ["", *_fanout_table(results[name], title, results["machine"])]
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


def _ratio(results, scenario, name, key):
    mine, node = results[scenario][name]["medians"][key], results[scenario]["node"]["medians"][key]
    return f"{mine / node:.2f}x" if mine is not None and node else "-"


def _targets(results):
    """The summary table: each scenario's figures for us and the Node peer, their ratio and the target."""
    rows = []
    if "steady" in results:
        s = {name: r["medians"] for name, r in results["steady"].items()}
        rows.append(
            f"| steady: delivery p50 / p99 (ms) | {s['python']['latP50']} / {s['python']['latP99']} | "
            f"{s['node']['latP50']} / {s['node']['latP99']} | p50 {_ratio(results, 'steady', 'python', 'latP50')}, "
            f"p99 {_ratio(results, 'steady', 'python', 'latP99')} | p50 at most 1.0x |"
        )
    if "burst" in results:
        b = {name: r["medians"] for name, r in results["burst"].items()}
        for name, target in (("python", "no worse than 1.24x"), ("python x2 (redis)", "at least 1.0x")):
            if name in b:
                rows.append(
                    f"| burst: deliveries/s, {name} | {b[name]['deliveriesPerS']} | {b['node']['deliveriesPerS']} | "
                    f"{_ratio(results, 'burst', name, 'deliveriesPerS')} | {target} |"
                )
    for name in (n for n in results.get("steady", {}) if n.startswith("python (")):
        steady, burst = results["steady"], results["burst"]
        rows.append(
            f"| {name}: steady p99 (ms) / burst deliveries/s | {steady[name]['medians']['latP99']} / "
            f"{burst[name]['medians']['deliveriesPerS']} | {steady['node']['medians']['latP99']} / "
            f"{burst['node']['medians']['deliveriesPerS']} | p99 {_ratio(results, 'steady', name, 'latP99')}, burst "
            f"{_ratio(results, 'burst', name, 'deliveriesPerS')} | measured (eventlet stays) |"
        )
    if "bigsteady" in results:
        rows.append(
            f"| big room steady: delivery p50 / p99 (ms), CPU per delivery (µs) | "
            f"{_figures(results['bigsteady']['python'])} | {_figures(results['bigsteady']['node'])} | "
            f"p50 {_ratio(results, 'bigsteady', 'python', 'latP50')}, "
            f"p99 {_ratio(results, 'bigsteady', 'python', 'latP99')}, "
            f"CPU {_ratio(results, 'bigsteady', 'python', 'serverCpuUsPerDelivery')} | p50, p99 at most 1.0x, CPU at "
            "most 0.5x |"
        )
    if "bigburst" in results:
        rows.append(
            f"| big room burst: deliveries/s | {results['bigburst']['python']['medians']['deliveriesPerS']} | "
            f"{results['bigburst']['node']['medians']['deliveriesPerS']} | "
            f"{_ratio(results, 'bigburst', 'python', 'deliveriesPerS')} | at least 1.5x |"
        )
    runs = [
        r for s in ("steady", "burst", "bigsteady", "bigburst") for v in results.get(s, {}).values() for r in v["runs"]
    ]
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
        "| server | deliveries/s | delivery p50 / p99 (ms) | server CPU per delivery (µs) | machine busy | runs (µs) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {name} | {r['medians']['deliveriesPerS']} | {r['medians']['latP50']} / {r['medians']['latP99']} | "
            f"{r['medians']['serverCpuUsPerDelivery']} | {r['medians']['machineBusy']:.0%} | "
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
