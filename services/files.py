"""Files: uploads to a room, downloads (by the right to read the room, or a signed URL), the files a message
takes, and their removal with their message or room, or after a day unused (`python -m jobs.cleanup`).

Every way a file goes (a failed upload, a deleted message or room, the cleanup job) deletes
its stored bytes before its record, and marks it `doomed` first wherever that takes more
than one step, so no URL serves it meanwhile and a crash leaves a record whose next purge
(the cleanup job's) finishes the work: nothing in storage is ever left without a record.
"""

import io
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath

import filetype
from bson import ObjectId
from flask import current_app
from mongoengine import NotUniqueError
from werkzeug.datastructures import FileStorage

from model.archived_message import ArchivedMessage
from model.file import Attachment, File
from model.message import Message, MessageFields
from model.user import User
from services import images, rooms
from services.file_storage import Missing, storage
from utils.errors import NotFound, Unauthorized, ValidationFailed
from utils.extensions import socketio
from utils.ids import parse_id
from utils.schemas import HIDDEN_CATEGORIES
from utils.signed_urls import check_signature
from utils.timefmt import utcnow

log = logging.getLogger(__name__)
UNKNOWN_TYPE = "application/octet-stream"
# What `filetype` reads to recognise a type.
HEAD_BYTES = 8192
NAME_LENGTH = 255
# A claim this old belongs to a send that died between taking its files and storing its message.
CLAIM_SECONDS = 600
PURGE_BATCH = 500


def do_upload(user: User, ref: str | None, upload: FileStorage) -> File:
    """Store a file in a room the caller may post in: its type read from its bytes, images measured and
    thumbnailed. The record is written first, so a crash while the bytes are stored leaves one for the
    cleanup job; a failure removes both (`_discard`)."""
    data = upload.stream
    try:
        room_id = rooms.postable(user, ref)
        file = File(room=room_id, user_id=user.id, name=clean_name(upload.filename), created_at=utcnow())
        file.content_type = _detect(data)
        picture = images.picture(data, file.content_type) if images.is_image(file.content_type) else None
        if picture is not None:
            file.width, file.height = picture.width, picture.height
            file.thumbnail_type, file.thumbnail_size = picture.thumbnail_type, len(picture.thumbnail)
        file.size = data.seek(0, io.SEEK_END)
        file.save(force_insert=True)
        try:
            data.seek(0)
            storage().put(_key(file.id), data, file.content_type)
            if picture is not None:
                storage().put(_thumbnail_key(file.id), io.BytesIO(picture.thumbnail), picture.thumbnail_type)
        except Exception:
            _discard(file)
            raise
    finally:
        data.close()
    return file


def _discard(file):
    """Undo an upload that storage refused: never served, then purged; what storage refuses to delete now waits
    for the cleanup job."""
    File.objects(id=file.id).update(set__doomed=True)
    try:
        _purge([file])
    except Exception:  # the storage error being raised is the one to report
        log.warning("could not remove the failed upload %s; jobs.cleanup will", file.id, exc_info=True)


def clean_name(name: str | None) -> str:
    """A file name fit to show and to offer for saving: the last part of a path, without hidden characters,
    at most NAME_LENGTH characters (keeping the extension); "file" when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]  # some browsers send the whole path (C:\Users\...)
    name = "".join(char for char in name if unicodedata.category(char) not in HIDDEN_CATEGORIES).strip()
    name = name.lstrip(".")  # no hidden file (.bashrc) when saved
    if len(name) > NAME_LENGTH:
        suffix = PurePath(name).suffix[:16]
        name = name[: NAME_LENGTH - len(suffix)] + suffix
    return name or "file"


def _detect(data):
    head = data.read(HEAD_BYTES)
    data.seek(0)
    kind = filetype.guess(head)
    return kind.mime if kind is not None else UNKNOWN_TYPE


def _key(file_id):
    return str(file_id)


def _thumbnail_key(file_id):
    return f"{file_id}/thumbnail"


@dataclass
class Download:
    """What a download answers with: stored bytes, their type and size, the name to save them under."""

    key: str
    content_type: str
    size: int
    name: str
    inline: bool

    def open(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes [start, end); NotFound when storage lost them."""
        try:
            return storage().open(self.key, start, end)
        except Missing:
            raise NotFound("file not found") from None


def downloadable(user: User | None, file_id: str, thumbnail: bool, expires: str | None, sig: str | None) -> Download:
    """A file or its thumbnail, for a caller who may read its room, or (no caller) for a signed URL.

    Images are shown (`inline`), anything else is offered for saving: an HTML or SVG upload never
    renders in our origin.
    """
    variant = "thumbnail" if thumbnail else "file"
    if user is None and not check_signature(file_id, variant, expires, sig):
        raise Unauthorized("send 'Authorization: Bearer <token>', or use a file URL whose signature has not expired")
    oid = parse_id(file_id)
    file = File.objects(id=oid, doomed=None).first() if oid else None
    if file is None or (user is not None and not _readable(user, file)):
        raise NotFound(f"file {file_id} not found")
    if not thumbnail:
        return Download(_key(file.id), file.content_type, file.size, file.name, images.is_image(file.content_type))
    if file.thumbnail_type is None:
        raise NotFound(f"file {file_id} has no thumbnail")
    name = f"{PurePath(file.name).stem}-thumbnail.{file.thumbnail_type.rpartition('/')[2]}"
    return Download(_thumbnail_key(file.id), file.thumbnail_type, file.thumbnail_size, name, True)


def _readable(user, file):
    try:
        rooms.access(user, file.room)
    except NotFound:
        return False
    return True


@contextmanager
def attached(user: User, message: MessageFields, file_ids: list[ObjectId]):
    """Hold the files for `message` while the block stores it, their metadata copied into it.

    One conditional update takes them all (free, the sender's, in the message's room), so of
    two sends of one file only one gets it; a block that fails gives them back. A send whose
    process dies in between leaves `claimed_at` set: the cleanup job settles it. Without ids
    this costs nothing.
    """
    if not file_ids:
        yield
        return
    message.id = message.id or ObjectId()
    taken = File.objects(id__in=file_ids, room=message.room, user_id=user.id, message=None, doomed=None).update(
        set__message=message.id, set__claimed_at=utcnow()
    )
    if taken != len(file_ids):
        _release(message.id)
        if message.client_id and Message.objects(user_id=user.id, client_id=message.client_id).only("id").first():
            # A retry of a send whose message took these files: the caller returns that message.
            raise NotUniqueError("clientId already used")
        raise ValidationFailed(
            "files cannot be attached",
            {"attachments": ["Each must be a file you uploaded to this room that no message holds."]},
        )
    stored = {file.id: file for file in File.objects(id__in=file_ids)}
    message.attachments = [Attachment.of(stored[file_id]) for file_id in file_ids]
    try:
        yield
    except BaseException:
        _release(message.id)
        raise
    File.objects(message=message.id).update(unset__claimed_at=True)


def _release(message_id):
    File.objects(message=message_id, doomed=None).update(set__message=None, unset__claimed_at=True)


def do_delete_message_files(message_id: ObjectId) -> None:
    """Delete the files of a deleted message: no URL serves them from now on, then their bytes and records go."""
    File.objects(message=message_id).update(set__doomed=True)
    _purge(list(File.objects(message=message_id, doomed=True)))


def do_delete_room_files(room_id: ObjectId) -> None:
    """Delete the files of a deleted room, attached or not: no URL serves them from now on; their bytes and
    records go in the background (what a crash leaves, the cleanup job finishes)."""
    File.objects(room=room_id).update(set__doomed=True)
    socketio.start_background_task(_purge_room, current_app._get_current_object(), room_id)


def _purge_room(app, room_id):
    with app.app_context():
        try:
            while batch := list(File.objects(room=room_id, doomed=True).limit(PURGE_BATCH)):
                _purge(batch)
        except Exception:  # storage or database trouble: the doomed records wait for the cleanup job
            log.warning("could not delete the files of deleted room %s; jobs.cleanup will", room_id, exc_info=True)


def _purge(files) -> int:
    """Delete each file's bytes, then its record; return the bytes freed."""
    freed = 0
    for file in files:
        storage().delete(_key(file.id))
        if file.thumbnail_type is not None:
            storage().delete(_thumbnail_key(file.id))
        File.objects(id=file.id).delete()
        freed += file.size or 0
    return freed


@dataclass
class CleanupReport:
    """What a cleanup run did (or, dry, would do)."""

    dry_run: bool
    cutoff: datetime
    unattached: int = 0
    deleted: int = 0
    freed: int = 0
    settled: int = 0


def run_cleanup(older_than_hours: int, dry_run: bool = False) -> CleanupReport:
    """Remove uploads that no message took within `older_than_hours`, finish removing the files of deleted
    messages and rooms, and give back the files claimed by sends that died. Safe to rerun, and beside sends."""
    report = CleanupReport(dry_run, utcnow() - timedelta(hours=older_than_hours))
    report.settled = _settle_claims(dry_run)
    unattached = File.objects(message=None, doomed=None, created_at__lt=report.cutoff)
    if dry_run:
        doomed = File.objects(doomed=True)
        report.unattached, report.deleted = unattached.count(), doomed.count()
        report.freed = unattached.sum("size") + doomed.sum("size")
        return report
    # Doomed in one update, each only while still free: a send taking one meanwhile has it whole or not at all.
    report.unattached = unattached.update(set__doomed=True)
    purged = 0
    while batch := list(File.objects(doomed=True).limit(PURGE_BATCH)):
        report.freed += _purge(batch)
        purged += len(batch)
    report.deleted = max(0, purged - report.unattached)  # a room's purge in the background may take some first
    return report


def _settle_claims(dry_run):
    """Claims older than CLAIM_SECONDS were left by sends that died: kept where the message was stored (live
    or archived), else given back. Return how many files were (or would be) given back."""
    released = 0
    for message_id in File.objects(claimed_at__lt=utcnow() - timedelta(seconds=CLAIM_SECONDS)).distinct("message"):
        held = File.objects(message=message_id, claimed_at__exists=True)
        if any(document.objects(id=message_id).only("id").first() for document in (Message, ArchivedMessage)):
            if not dry_run:
                held.update(unset__claimed_at=True)
        else:
            released += held.count() if dry_run else held.update(set__message=None, unset__claimed_at=True)
    return released
