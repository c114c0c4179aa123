"""Moving old messages out of the live collection, so that a crash at any point loses nothing.

Per room and in position order, each batch is
1. copied into the archive by id (an upsert: a copy is never duplicated),
2. published by moving the room's `archived_seq` watermark up to the batch's last position,
3. deleted from the live collection, each message only if unchanged since its copy; one with
   a clientId leaves a stub there, so a retry of its send still finds it.

Reads use the watermark rather than the collections' contents: live history shows positions
above it, archived history those at or below it. Copy and delete are two writes, but the
switch between them is one atomic update, so a reader sees each message in exactly one place
even while a batch is half moved, and a rerun after a crash finishes the move. A batch never
passes a position still being written (`model/message_scan.newer`).
"""

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import takewhile

from bson import ObjectId
from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import DuplicateKeyError

from model import message_scan
from model.archived_message import ArchivedMessage
from model.job_lease import JobLease
from model.job_run import record_run
from model.message import Message
from model.message_log import top_position
from model.room import Room
from services import notify, pins
from utils.errors import NotFound
from utils.timefmt import utcnow

LEASE = "archive"
log = logging.getLogger(__name__)


class AnotherRun(Exception):
    """Another archive run holds the lease."""


@dataclass
class ArchiveReport:
    """What one run did (or, dry, would do): messages scanned and moved, batches, the rooms it moved from."""

    dry_run: bool
    cutoff: datetime
    scanned: int = 0
    moved: int = 0
    batches: int = 0
    rooms: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        """How long the run has taken so far."""
        return time.monotonic() - self.started


def run_archive(
    older_than_days: int,
    room_id: ObjectId | None = None,
    batch_size: int = 1000,
    dry_run: bool = False,
    lease_seconds: float = 300,
    gap_seconds: float = 10,
) -> ArchiveReport:
    """Archive messages older than `older_than_days` (one room or all); return an ArchiveReport."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    report = ArchiveReport(dry_run, cutoff)
    rooms = Room.objects(id=room_id) if room_id else Room.objects.order_by("id")
    rooms = rooms.only("id", "archived_seq", "archiving_from")
    if room_id and not rooms.count():
        raise NotFound.room(room_id)
    if dry_run:
        live = Message._get_collection()
        for room in rooms:
            count = live.count_documents(
                {"room": room.id, "seq": {"$gt": room.archived_seq}, "time_stamp": {"$lt": cutoff}, "gap": None}
            )
            report.scanned += count
            report.batches += -(-count // batch_size)
        return report
    try:
        with _lease(lease_seconds) as renew:
            for room in rooms:
                if _archive_room(room, cutoff, batch_size, gap_seconds, report, renew):
                    report.rooms.append(str(room.id))
                    notify.notify_messages_archived(room.id, cutoff)
    except AnotherRun:
        raise  # that run records its own result
    except Exception:
        _record(False, report)
        raise
    _record(True, report)
    return report


def _record(ok, report):
    """Keep the run's result for `GET /metrics`; a failure to record never changes the run's outcome."""
    try:
        record_run(LEASE, ok, report.moved, report.seconds)
    except Exception:  # the database may be what failed the run
        log.warning("could not record the archive run's result", exc_info=True)


def _archive_room(room, cutoff, batch_size, gap_seconds, report, renew):
    live, archive = Message._get_collection(), ArchivedMessage._get_collection()
    # What an interrupted run copied and published but did not delete: its last batch.
    last_batch = {"$gte": room.archiving_from, "$lte": room.archived_seq}
    left = list(live.find({"room": room.id, "seq": last_batch, "stub": None}))
    moved = 0
    if left:
        _copy(archive, left)
        moved = _retire(live, archive, left)
    ceiling = top_position(room.id)
    while True:
        page = message_scan.newer(live, room.id, room.archived_seq, ceiling, batch_size, gap_seconds)
        batch = list(takewhile(lambda doc: doc["time_stamp"] < cutoff, page))
        if not batch:
            break
        report.scanned += len(batch)
        report.batches += 1
        _copy(archive, batch)
        top = batch[-1]["seq"]
        Room._get_collection().update_one(
            {"_id": room.id}, {"$max": {"archived_seq": top}, "$set": {"archiving_from": batch[0]["seq"]}}
        )
        room.archived_seq, room.archiving_from = top, batch[0]["seq"]
        moved += _retire(live, archive, batch)
        live.delete_many({"room": room.id, "seq": {"$lte": top}, "gap": True})  # filled positions: nothing to keep
        renew()
        if len(batch) < batch_size:
            break
    report.moved += moved
    return moved


def _copy(archive, docs):
    archive.bulk_write([ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in docs], ordered=False)


# What may change in a stored message (an edit or delete, its thread, reactions, pin): a message
# that changed between its copy and its removal is copied again.
_CHANGING = ("edited_at", "deleted", "reply_count", "last_reply_at", "reactions", "pinned_at")


def _retire(live, archive, batch):
    """Delete the batch (of one room) from the live collection, leaving stubs for clientIds; copy again what changed
    since. Then free the pin slots its messages held: the archive holds no pins (`services/pins.py`)."""
    room_id, ids = batch[0]["room"], {doc["_id"] for doc in batch}
    retired = 0
    while batch:
        unchanged = [{"_id": d["_id"], **{field: d.get(field) for field in _CHANGING}} for d in batch]
        result = live.bulk_write(
            [
                ReplaceOne(match, _stub(doc)) if doc.get("client_id") else DeleteOne(match)
                for match, doc in zip(unchanged, batch, strict=True)
            ],
            ordered=False,
        )
        retired += result.deleted_count + result.modified_count
        batch = list(live.find({"_id": {"$in": [doc["_id"] for doc in batch]}, "stub": None}))
        if batch:
            _copy(archive, batch)
    pins.unpin_archived(room_id, ids)
    return retired


def _stub(doc):
    keep = ("_id", "room", "seq", "user_id", "client_id")
    return {**{key: doc[key] for key in keep}, "stub": True}


@contextmanager
def _lease(seconds):
    """Hold the archive lease for the block, renewed by calling the yielded function."""
    owner = uuid.uuid4().hex
    if not _acquire(owner, seconds):
        raise AnotherRun()
    try:
        yield lambda: _acquire(owner, seconds) or _lost()
    finally:
        JobLease.objects(name=LEASE, owner=owner).delete()


def _acquire(owner, seconds):
    now = utcnow()
    try:
        JobLease._get_collection().find_one_and_update(
            {"_id": LEASE, "$or": [{"expires_at": {"$lt": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "expires_at": now + timedelta(seconds=seconds)}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True


def _lost():
    raise AnotherRun("the archive lease expired and another run took it")
