"""`make bench`: this server against a minimal Node + Socket.IO peer, on one fresh database daemon.

Scenarios (each run alternately against both servers, the median of --repeat runs kept):
- steady: 50 clients, 5 senders at 20 msg/s each; judge delivery latency.
- burst: 100 clients, 10 senders, each sending as soon as its previous ack arrives; judge deliveries/s.
- burst with two server processes behind Redis (clients spread over both).
- steady and burst again on the other async modes (gevent, threading), one process each.
- history: GET /api/messages, 50 a page, random `before` cursors, on a room of 100k messages.
- scaling: 10, 100, 500, 1000 clients in a room; RSS per connection, latency and throughput.
Writes docs/bench-results.json, docs/bench-results.md and docs/bench-scaling.png.
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
    out = json.loads(proc.communicate(timeout=600)[0].strip().splitlines()[-1])
    os.unlink(file.name)
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


def median_run(runs):
    """The run with the median deliveries/s, plus every run's key figures."""
    runs = sorted(runs, key=lambda r: r["deliveriesPerS"])
    return {
        **runs[len(runs) // 2],
        "runs": [
            {k: r[k] for k in ("deliveriesPerS", "latP99", "lost", "dupes", "serverCpuUsPerDelivery", "machineBusy")}
            for r in runs
        ],
    }


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
            results[name].append(measured_load(urls, tokens[: scenario["clients"]], room, scenario["load"], pids))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--modes", default="gevent,threading", help="other ASYNC_MODEs to run steady and burst on")
    parser.add_argument("--out", default=str(DOCS))
    parser.add_argument(
        "--db-path", default=":memory:", help="the database's storage: a directory keeps a journal, as in production"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    daemon, uri = start_daemon(args.db_path, log_path=str(work / "db.log"))
    redis = RedisServer(work)
    redis.start()
    env = {"LOG_LEVEL": "WARNING"}
    server = LiveServer(uri, work, **env).start()
    peer = NodePeer(with_database(uri, "ref"), work)
    pair = [LiveServer(uri, work, REDIS_URL=redis.url, **env).start() for _ in range(2)]
    modes = {
        f"python ({m})": LiveServer(uri, work, script="bench/serve_other.py", ASYNC_MODE=m, **env).start()
        for m in args.modes.split(",")
        if m
    }
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()} cores", "repeat": args.repeat}
    try:
        side = ProjectSide(server.url, max([*sizes, 100]))
        ref_tokens = [f"u{i}" for i in range(max([*sizes, 100]))]
        steady = {"clients": 50, "load": {"senders": 5, "messages": 60, "rate": 20}}
        burst = {"clients": 100, "load": {"senders": 10, "messages": 300, "rate": 0}}
        sides = {
            "python": ([server.url], side.tokens, side.room, [server.proc.pid]),
            "node": ([peer.url], ref_tokens, "bench", [peer.proc.pid]),
            **{name: ([mode.url], side.tokens, side.room, [mode.proc.pid]) for name, mode in modes.items()},
        }
        pair_side = {"python x2 (redis)": ([p.url for p in pair], side.tokens, side.room, [p.proc.pid for p in pair])}
        for urls, tokens, room, _ in (*sides.values(), *pair_side.values()):
            # Unmeasured: connection pools and caches grow to their working size on either side.
            loadgen(urls, tokens[:100], room, senders=10, messages=30, rate=0)
        results["steady"] = fanout(sides, steady, args.repeat)
        print("steady", json.dumps(results["steady"]), flush=True)
        results["burst"] = fanout(sides, burst, args.repeat)
        print("burst", json.dumps(results["burst"]), flush=True)
        results["burst"].update(fanout(pair_side, burst, args.repeat))
        print("burst x2", json.dumps(results["burst"]["python x2 (redis)"]), flush=True)
        results["scaling"] = scaling(server, peer, side.tokens, side.room, sizes)
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
    steady, burst, hist = results["steady"], results["burst"], results["history"]
    ratio = burst["python"]["deliveriesPerS"] / burst["node"]["deliveriesPerS"]
    ratio2 = burst["python x2 (redis)"]["deliveriesPerS"] / burst["node"]["deliveriesPerS"]
    p99 = steady["python"]["latP99"] / steady["node"]["latP99"]
    lost = sum(r["lost"] + r["dupes"] for s in (steady, burst) for v in s.values() for r in v["runs"])
    lost += sum(r["lost"] + r["dupes"] for r in results["scaling"])
    lines = [
        f"Measured {results['date']} on {results['machine']} (median of {results['repeat']} runs).",
        "",
        "| scenario | python | node | ratio | target |",
        "|---|---|---|---|---|",
        f"| steady: delivery p50 / p99 (ms) | {steady['python']['latP50']} / {steady['python']['latP99']} | "
        f"{steady['node']['latP50']} / {steady['node']['latP99']} | p99 {p99:.2f}x | p99 at most 2x |",
        f"| burst: deliveries/s, 1 process | {burst['python']['deliveriesPerS']} | {burst['node']['deliveriesPerS']} | "
        f"{ratio:.2f}x | at least 0.5x |",
        f"| burst: deliveries/s, 2 processes + Redis | {burst['python x2 (redis)']['deliveriesPerS']} | "
        f"{burst['node']['deliveriesPerS']} | {ratio2:.2f}x | at least 1.0x |",
        *[
            f"| {name}: steady p99 (ms) / burst deliveries/s | {steady[name]['latP99']} / "
            f"{burst[name]['deliveriesPerS']} | {steady['node']['latP99']} / {burst['node']['deliveriesPerS']} | "
            f"p99 {steady[name]['latP99'] / steady['node']['latP99']:.2f}x, burst "
            f"{burst[name]['deliveriesPerS'] / burst['node']['deliveriesPerS']:.2f}x | measured (eventlet stays) |"
            for name in steady
            if name.startswith("python (")
        ],
        f"| lost + duplicated deliveries, all runs | {lost} | | | 0 |",
        "",
        f"Burst, CPU while sending ({results['machine']}, shared by servers, load generator and database):",
        "",
        "| server | deliveries/s | server CPU per delivery (µs) | machine busy |",
        "|---|---|---|---|",
        *[
            f"| {name} | {r['deliveriesPerS']} | {r['serverCpuUsPerDelivery']} | {r['machineBusy']:.0%} |"
            for name, r in burst.items()
        ],
        "",
        f"History: {hist['requestsPerS']} requests/s, p50 {hist['p50']} ms, p99 {hist['p99']} ms, 50 a page of "
        f"{hist['messages']} messages; plan `{hist['plan']}`, {hist['docsExamined']} documents examined.",
        "",
        "| server | clients | RSS per connection (KiB) | deliveries/s | latency p50 / p99 (ms) |",
        "|---|---|---|---|---|",
        *[
            f"| {r['server']} | {r['clients']} | {r['rssPerConnectionKiB']} | {r['deliveriesPerS']} | "
            f"{r['latP50']} / {r['latP99']} |"
            for r in results["scaling"]
        ],
    ]
    (out / "bench-results.md").write_text("\n".join(lines) + "\n")
    plot(results["scaling"], out / "bench-scaling.png")
    print("\n".join(lines))


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
