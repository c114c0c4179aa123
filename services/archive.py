"""Moving old messages out of the live collection, so that a crash at any point loses nothing.

Per room and in id order, each batch is
1. copied into the archive by id (an upsert: a copy is never duplicated),
2. published by moving the room's `archived_before` watermark up to the batch's last id,
3. deleted from the live collection, each message only if unchanged since its copy.

Reads use the watermark rather than the collections' contents: live history shows ids above
it, archived history ids at or below it. Copy and delete are two writes, but the switch
between them is one atomic update, so a reader sees each message in exactly one place even
while a batch is half moved, and a rerun after a crash finishes the move.
"""

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from bson import ObjectId
from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import DuplicateKeyError

from model.archived_message import ArchivedMessage
from model.job_lease import JobLease
from model.message import Message
from model.room import Room
from services import notify
from utils.errors import NotFound
from utils.timefmt import utcnow

LEASE = "archive"


class AnotherRun(Exception):
    """Another archive run holds the lease."""


@dataclass
class ArchiveReport:
    dry_run: bool
    cutoff: object
    scanned: int = 0
    moved: int = 0
    batches: int = 0
    rooms: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self):
        return time.monotonic() - self.started


def run_archive(older_than_days, room_id=None, batch_size=1000, dry_run=False, lease_seconds=300):
    """Archive messages older than `older_than_days` (one room or all); return an ArchiveReport."""
    cutoff_time = utcnow() - timedelta(days=older_than_days)
    report = ArchiveReport(dry_run, cutoff_time)
    cutoff = ObjectId.from_datetime(cutoff_time)
    rooms = Room.objects(id=room_id) if room_id else Room.objects.order_by("id")
    if room_id and not rooms.count():
        raise NotFound.room(room_id)
    if dry_run:
        for room in rooms.only("id", "archived_before"):
            count = Message.objects(__raw__=_due(room, cutoff)).count()
            report.scanned += count
            report.batches += -(-count // batch_size)
        return report
    with _lease(lease_seconds) as renew:
        for room in rooms.only("id", "archived_before"):
            moved = _archive_room(room, cutoff, batch_size, report, renew)
            if moved:
                report.rooms.append(str(room.id))
                notify.notify_messages_archived(room.id, cutoff_time)
    return report


def _due(room, cutoff):
    """The live messages of a room to move: older than the cutoff, or already behind its watermark."""
    watermark = room.archived_before
    bound = {"$lte": watermark} if watermark and watermark >= cutoff else {"$lt": cutoff}
    return {"room": room.id, "_id": bound}


def _archive_room(room, cutoff, batch_size, report, renew):
    live, archive = Message._get_collection(), ArchivedMessage._get_collection()
    moved = 0
    while True:
        batch = list(live.find(_due(room, cutoff)).sort("_id", 1).limit(batch_size))
        if not batch:
            return moved
        report.scanned += len(batch)
        report.batches += 1
        _copy(archive, batch)
        Room._get_collection().update_one({"_id": room.id}, {"$max": {"archived_before": batch[-1]["_id"]}})
        room.archived_before = max(room.archived_before or batch[-1]["_id"], batch[-1]["_id"])
        deleted = _delete_copied(live, archive, batch)
        moved += deleted
        report.moved += deleted
        renew()


def _copy(archive, docs):
    archive.bulk_write([ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in docs], ordered=False)


def _delete_copied(live, archive, batch):
    """Delete the batch from the live collection; a message edited since its copy is copied again first."""
    deleted = 0
    while batch:
        result = live.bulk_write(
            [
                DeleteOne({"_id": doc["_id"], "edited_at": doc.get("edited_at"), "deleted": doc.get("deleted")})
                for doc in batch
            ],
            ordered=False,
        )
        deleted += result.deleted_count
        batch = list(live.find({"_id": {"$in": [doc["_id"] for doc in batch]}}))
        if batch:
            _copy(archive, batch)
    return deleted


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
