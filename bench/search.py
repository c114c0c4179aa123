"""`python bench/search.py`: message search over 100k messages, through the real HTTP endpoint.

Starts a fresh in-memory SecantusDB daemon and this server, registers a reader, creates five
public rooms of different sizes and a private room of someone else, and stores 100k messages
straight into the database (ids spread over 30 days, positions as the server gives them, keys
from `utils.search_keys.keys_of`, the function the send path uses). Bodies are 3 to 20 words
drawn from a Zipf distribution (exponent 1.07) over 30k words: fifty common English words
first, then made-up ones of one to four syllables. Then it times `GET /api/search` for each
case below, `--queries` times, each query with another word of the case's frequency band, and
prints p50 and p99, the hits per page, and the plan of one query of each shape.

First, what the search keys cost a send: the database's CPU time per message stored, in
batches of ten as the group commit stores them, into a collection with the indexes of
`messages` and into one without the search index (and without keys), alternately.
"""

import argparse
import bisect
import itertools
import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pymongo
import requests
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.embedded import start_daemon, stop_daemon  # noqa: E402
from model.message import Message  # noqa: E402
from tests.support import Api, LiveServer, register  # noqa: E402
from utils.search_keys import Query, keys_of  # noqa: E402

# The fifty most frequent English words, most frequent first.
COMMON = (
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on", "with", "he", "as",
    "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or", "an", "will",
    "my", "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about", "who", "get", "which",
    "go", "me",
)  # fmt: skip
VOCABULARY = 30_000
ROOM_SHARES = (0.5, 0.25, 0.15, 0.09, 0.01)  # the public rooms; the private room of someone else holds the rest
PRIVATE_SHARE = 0.05
DAYS = 30


def vocabulary(rng):
    """COMMON, then distinct made-up words of one to four syllables, most frequent first."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "in", "on", "ust", "ing"]
    words, seen = list(COMMON), set(COMMON)
    while len(words) < VOCABULARY:
        word = "".join(rng.choices(syllables, k=rng.choice((1, 2, 2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(words):
    """Cumulative weights of `words`, most frequent first, for `random.choices`."""
    return list(itertools.accumulate(1 / rank**1.07 for rank in range(1, len(words) + 1)))


def fill(db, rooms, author, messages, rng, words):
    """Store `messages` messages over the last DAYS days; return {room id: messages stored}."""
    weights = zipf_weights(words)
    shares = list(itertools.accumulate((*ROOM_SHARES, PRIVATE_SHARE)))
    now = int(time.time())
    times = sorted(rng.randrange(now - DAYS * 86400, now) for _ in range(messages))
    seq = dict.fromkeys(rooms, 0)
    batch = []
    for stamp in times:
        room = rooms[bisect.bisect(shares, rng.random() * shares[-1])]
        seq[room] += 1
        body = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 20)))
        oid = ObjectId(stamp.to_bytes(4, "big") + rng.randbytes(8))
        batch.append(
            {"_id": oid, "room": room, "seq": seq[room], "user_id": author, "user_name": "seed", "message_body": body,
             "time_stamp": oid.generation_time, "client_id": None, "deleted": False, "search_keys": keys_of(body)}
        )  # fmt: skip
        if len(batch) == 1000:
            db.messages.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.messages.insert_many(batch, ordered=False)
    for room, top in seq.items():
        db.rooms.update_one({"_id": room}, {"$set": {"seq": top}})
    return seq


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_cost(db, pid, bodies, rounds=5, per_round=500):
    """The database's CPU per message stored (µs, median of the rounds), without and with the search indexes."""
    specs = Message._meta["index_specs"]
    variants = {
        "without": [spec for spec in specs if all(field != "search_keys" for field, _ in spec["fields"])],
        "with": specs,
    }
    for name, chosen in variants.items():
        for spec in chosen:
            options = {key: spec[key] for key in ("unique", "partialFilterExpression") if key in spec}
            db[f"cost_{name}"].create_index(spec["fields"], **options)
    costs, seq = {name: [] for name in variants}, itertools.count(1)
    for _ in range(rounds):
        for name in variants:
            started = cpu_seconds(pid)
            for start in range(0, per_round, 10):
                docs = [
                    {"room": ObjectId(), "seq": next(seq), "user_id": ObjectId(), "user_name": "cost",
                     "message_body": body, "time_stamp": ObjectId().generation_time, "client_id": str(ObjectId()),
                     "deleted": False, **({"search_keys": keys_of(body)} if name == "with" else {})}
                    for body in bodies[start : start + 10]
                ]  # fmt: skip
                db[f"cost_{name}"].insert_many(docs, ordered=False)
            costs[name].append((cpu_seconds(pid) - started) / per_round * 1e6)
    return {name: round(sorted(values)[len(values) // 2]) for name, values in costs.items()}


def cases(words, rooms, rng):
    """Each case: a name, and a function giving the query parameters of one query."""
    big, small = str(rooms[0]), str(rooms[len(ROOM_SHARES) - 1])
    mid, rare = words[100:400], words[20_000:]
    return {
        "common word, all rooms": lambda: {"q": rng.choice(COMMON[:10])},
        "common word, 2nd page": lambda: {"q": rng.choice(COMMON[:10]), "page": 2},
        "one word, all rooms": lambda: {"q": rng.choice(mid)},
        "two words, all rooms": lambda: {"q": f"{rng.choice(words[50:150])} {rng.choice(words[50:150])}"},
        "prefix (3 letters), all rooms": lambda: {"q": rng.choice(mid)[:3]},
        "rare word, all rooms": lambda: {"q": rng.choice(rare)},
        "absent word, all rooms": lambda: {"q": "zzyzx"},
        "one word, room of 50%": lambda: {"q": rng.choice(mid), "room": big},
        "one word, room of 1%": lambda: {"q": rng.choice(mid), "room": small},
        "common word, room of 1%": lambda: {"q": rng.choice(COMMON[:10]), "room": small},
    }


def timed(session, url, params, limit):
    """One search (two for a second page); return (milliseconds of the last request, hits)."""
    params = dict(params)
    pages = params.pop("page", 1)
    cursor = None
    for _ in range(pages):
        started = time.perf_counter()
        response = session.get(f"{url}/api/search", params={**params, "limit": limit, "before": cursor})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.text
        cursor = response.json()["nextCursor"]
    return elapsed, len(response.json()["messages"])


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def setup(api):
    """A reader, its five public rooms and someone else's private room; return (reader, room ids)."""
    reader, other = register(api), register(api)
    rooms = [api.post("/api/rooms", reader.token, json={"name": f"r{i}"}) for i in range(len(ROOM_SHARES))]
    rooms.append(api.post("/api/rooms", other.token, json={"name": "theirs", "private": True}))
    return reader, [ObjectId(room.json()["id"]) for room in rooms]


def measure(url, token, cases, queries, limit):
    """p50, p99 and hits a page of each case."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    rows = []
    for name, make in cases.items():
        timings, hits = zip(*(timed(session, url, make(), limit) for _ in range(queries)), strict=True)
        row = {"case": name, "p50": round(percentile(timings, 0.5), 1), "p99": round(percentile(timings, 0.99), 1)}
        rows.append({**row, "hits": round(sum(hits) / len(hits), 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def plan(db, key):
    """The plan of one window of ids (`model/message_search.py`), a day wide: `STAGE index <- ...`, documents read."""
    day_ago = ObjectId.from_datetime(ObjectId().generation_time - timedelta(days=1))
    explained = db.messages.find({"search_keys": key, "_id": {"$gte": day_ago}}).sort("_id", -1).limit(500).explain()
    stages, stage = [], explained["queryPlanner"]["winningPlan"]
    while stage:
        stages.append(stage["stage"] + (f" {stage['indexName']}" if "indexName" in stage else ""))
        stage = stage.get("inputStage")
    return " <- ".join(stages), explained.get("executionStats", {}).get("totalDocsExamined")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100, help="per case")
    parser.add_argument("--limit", type=int, default=20, help="messages a page")
    args = parser.parse_args()
    rng = random.Random(16)
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    daemon, uri = start_daemon(":memory:", log_path=str(work / "db.log"))
    # Filling takes minutes: the reader's token must outlive it.
    env = {"LOG_LEVEL": "WARNING", "READ_RATE_LIMIT": "1000000/minute", "ACCESS_TOKEN_MINUTES": "600"}
    server = LiveServer(uri, work, **env).start()
    client = pymongo.MongoClient(uri)
    try:
        reader, rooms = setup(Api(server.url))
        db = client.get_default_database()
        words = vocabulary(rng)
        weights = zipf_weights(words)
        for kind, bodies in {
            "the load generator's": [f"{'x' * 64} {i % 10}:{i}" for i in range(500)],
            "3 to 20 words of chat": [" ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 20)))
                                      for _ in range(500)],
        }.items():  # fmt: skip
            cost = store_cost(db, daemon.pid, bodies)
            print(f"database CPU per message stored, {kind} bodies: {cost['without']} µs without search keys, "
                  f"{cost['with']} µs with them", flush=True)  # fmt: skip
        started = time.perf_counter()
        sizes = fill(db, rooms, ObjectId(reader.id), args.messages, rng, words)
        seconds = time.perf_counter() - started
        keys = [len(doc["search_keys"]) for doc in db.messages.find({"room": rooms[-2]}, {"search_keys": 1})]
        print(f"stored {args.messages} messages in {seconds:.0f} s, {sum(keys) / len(keys):.1f} keys a message; "
              f"messages a room: {list(sizes.values())}", flush=True)  # fmt: skip
        rows = measure(server.url, reader.token, cases(words, rooms, rng), args.queries, args.limit)
        print(f"\n{args.queries} queries a case, {args.limit} messages a page:\n")
        print("| case | p50 (ms) | p99 (ms) | hits a page |\n|---|---|---|---|")
        for row in rows:
            print(f"| {row['case']} | {row['p50']:.1f} | {row['p99']:.1f} | {row['hits']} |")
        stages, examined = plan(db, Query.parse(words[200]).key)
        print(f"plan of a day's window for a word of rank 200: `{stages}`, {examined} documents examined")
    finally:
        client.close()
        server.stop()
        stop_daemon(daemon)


if __name__ == "__main__":
    main()
