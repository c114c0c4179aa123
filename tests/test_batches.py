"""Reads by many values in chunks (model/batches.py), against the suite's database."""

from bson import ObjectId
from pymongo import MongoClient, monitoring

from model.batches import IN_CHUNK, find_in


class Finds(monitoring.CommandListener):
    """The filters of the `find` commands sent."""

    def __init__(self):
        self.filters = []

    def started(self, event):
        if event.command_name == "find":
            self.filters.append(event.command["filter"])

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_a_read_by_many_values_is_made_in_chunks_and_finds_each_document_once(mongo_uri):
    finds = Finds()
    client = MongoClient(mongo_uri, event_listeners=[finds])
    try:
        collection = client.get_default_database()["batches_probe"]
        ids = [ObjectId() for _ in range(2 * IN_CHUNK + 7)]
        collection.insert_many([{"_id": each, "n": n} for n, each in enumerate(ids)])
        found = list(find_in(collection, "_id", ids + ids[:3], {"n": 1}))  # a value given twice is found once
        assert sorted(doc["_id"] for doc in found) == sorted(ids)
        assert [len(f["_id"]["$in"]) for f in finds.filters] == [IN_CHUNK, IN_CHUNK, 7]
        finds.filters.clear()
        assert list(find_in(collection, "_id", [])) == [] and finds.filters == [], "no values: no read"
    finally:
        client.get_default_database().drop_collection("batches_probe")
        client.close()
