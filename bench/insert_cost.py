"""`python bench/insert_cost.py [--messages N] [--batch B]`: what storing a message costs the embedded database.

It starts its own SecantusDB daemon (in memory, as `make bench` does) and, for the messages
collection with none of its secondary indexes, then with one more at a time in the order the
model declares them, inserts N messages as the group commit does (unordered, journaled, B to an
`insert_many`), built by the server's own `new_message`/`stored_form` with a bench message's
search keys. Then it times the two other writes a send costs: the room counter's update (once a
batch and room) and a sender's read-marker move (one statement of the markers' bulk write). It
prints the daemon's CPU time (user + system, from /proc) per message or statement, the median of
three runs each (docs/PERFORMANCE.md, "What a message costs the database").
"""

import argparse
import statistics
import sys
from pathlib import Path

from bson import ObjectId
from pymongo import MongoClient, UpdateOne, WriteConcern

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import cpu_seconds
from model.embedded import start_daemon, stop_daemon
from model.membership import Membership
from model.message import Message, new_message, stored_form
from services.read_state import _forward
from utils import search_keys
from utils.timefmt import utcnow

RUNS = 3
BODY = "x" * 64 + " 3:17"  # what bench/loadgen.js sends


def median_cpu(proc, runs, work, count):
    """The median over `runs` of the daemon's CPU per item (µs) while `work(run)` handles `count` items."""
    costs = []
    for run in range(runs):
        before = cpu_seconds(proc.pid)
        work(run)
        costs.append((cpu_seconds(proc.pid) - before) / count * 1e6)
    return statistics.median(costs)


def create_indexes(collection, document, count):
    """The first `count` secondary indexes `document` declares, as mongoengine builds them."""
    for spec in document._meta["index_specs"][:count]:
        options = {key: value for key, value in spec.items() if key != "fields"}
        collection.create_index(spec["fields"], **options)


def messages(count, room):
    user = ObjectId()
    for _ in range(count):
        message = new_message(
            room=room,
            user_id=user,
            user_name="u1",
            message_body=BODY,
            client_id=str(ObjectId()),
            search_keys=search_keys.message_keys(BODY, room, [], False),
        )
        message.id, message.time_stamp = ObjectId(), utcnow()
        yield message


def insert_costs(proc, db, total, batch):
    specs = Message._meta["index_specs"]
    names = ["_id only"] + ["+ " + ", ".join(name for name, _ in spec["fields"]) for spec in specs]
    for count, name in enumerate(names):

        def insert(run, count=count):
            collection = db[f"messages_{count}_{run}"].with_options(write_concern=WriteConcern(w=1, j=True))
            create_indexes(collection, Message, count)
            stored = list(messages(total, ObjectId()))
            for seq, message in enumerate(stored, start=1):
                message.seq = seq
            for start in range(0, total, batch):
                collection.insert_many([stored_form(m) for m in stored[start : start + batch]], ordered=False)

        print(f"insert, {name:40} {median_cpu(proc, RUNS, insert, total):7.0f} µs a message", flush=True)


def update_costs(proc, db, total):
    counters = db.room_counters.with_options(write_concern=WriteConcern(w=1, j=False))
    rooms = [ObjectId() for _ in range(total)]
    counters.insert_many([{"_id": room, "seq": 0} for room in rooms])

    def count(run):
        for room in rooms:
            counters.update_one({"_id": room, "seq": run}, {"$inc": {"seq": 1}})

    print(f"room counter update (one a batch and room)      {median_cpu(proc, RUNS, count, total):7.0f} µs", flush=True)
    members = db[Membership._get_collection_name()]
    create_indexes(members, Membership, len(Membership._meta["index_specs"]))
    users = [ObjectId() for _ in range(total)]
    members.insert_many([{"room": rooms[0], "user": user, "read_seq": 0} for user in users])

    def move(run):
        mark = (run + 1, ObjectId(), utcnow())
        forward = [UpdateOne({"room": rooms[0], "user": user}, _forward(*mark)) for user in users]
        members.with_options(write_concern=WriteConcern(w=1, j=False)).bulk_write(forward, ordered=False)

    print(f"sender marker move (one statement of the bulk)  {median_cpu(proc, RUNS, move, total):7.0f} µs", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4, help="messages an insert_many (a group commit's batch)")
    args = parser.parse_args()
    proc, uri = start_daemon()
    try:
        db = MongoClient(uri, uuidRepresentation="standard").get_database("cost")
        insert_costs(proc, db, args.messages, args.batch)
        update_costs(proc, db, args.messages)
    finally:
        stop_daemon(proc)


if __name__ == "__main__":
    main()
