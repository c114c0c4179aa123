"""Group commit: sends that arrive while an insert is in flight are stored together in the next one.

Under load every message used to cost its own insert round trip, in the driver and in the
database. Here one caller at a time writes: it takes every document waiting, stores them
with one unordered `insert_many`, wakes their callers, and hands the lead to the first one
that arrived meanwhile. A lone send is written at once, without waiting for company; each
caller returns only once its own document is stored (or raises its own error), so an ack
still follows the store.
"""

import threading

from bson import ObjectId
from mongoengine import NotUniqueError
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


class _Waiter:
    def __init__(self, document):
        self.document = document
        self.done = threading.Event()  # green under eventlet and gevent (monkey-patched)
        self.lead = False
        self.error = None


class GroupInsert:
    """Insert MongoEngine documents of one class, batching the ones that arrive together."""

    def __init__(self, document_class):
        self.document_class = document_class
        self.lock = threading.Lock()
        self.pending = []
        self.writing = False

    def insert(self, document):
        """Store `document` (its id is set first); NotUniqueError when a unique index refuses it."""
        document.id = document.id or ObjectId()
        waiter = _Waiter(document)
        with self.lock:
            self.pending.append(waiter)
            lead, self.writing = not self.writing, True
        if not lead:
            waiter.done.wait()
        if lead or waiter.lead:
            self._write_pending()
        if waiter.error is not None:
            raise waiter.error

    def _write_pending(self):
        with self.lock:
            batch, self.pending = self.pending, []
        try:
            self._write(batch)
        finally:
            with self.lock:
                if self.pending:
                    self.pending[0].lead = True
                    self.pending[0].done.set()
                else:
                    self.writing = False
            for waiter in batch:
                waiter.done.set()

    def _write(self, batch):
        collection = self.document_class._get_collection()
        try:
            collection.insert_many([waiter.document.to_mongo() for waiter in batch], ordered=False)
        except BulkWriteError as error:
            for failure in error.details.get("writeErrors", []):
                kind = NotUniqueError if failure.get("code") == DUPLICATE_KEY else RuntimeError
                batch[failure["index"]].error = kind(failure.get("errmsg", "write failed"))
        except Exception as error:  # the whole batch failed: each caller sees why
            for waiter in batch:
                waiter.error = error
