"""Where file bytes live, behind one small interface chosen by FILE_STORAGE: `put(key, stream, content_type)`,
`open(key, start, end)` (an iterator over that byte range), `delete(key)` (no error when it is gone).

`gridfs` (the default) keeps them in the application's own database (GridFS: `fs.files` and
`fs.chunks`), so the embedded default needs nothing more; `s3` in an S3 bucket (AWS or any
S3-compatible server: S3_ENDPOINT_URL), which keeps them out of the database's backups and
working set. Keys are file ids, never names a client chose.
"""

from collections.abc import Iterator
from contextlib import suppress
from typing import BinaryIO, Protocol

import mongoengine
from flask import current_app
from gridfs import GridFSBucket
from gridfs.errors import NoFile

CHUNK = 64 * 1024


class Missing(Exception):
    """Storage has nothing under that key."""


class FileStorage(Protocol):
    def put(self, key: str, stream: BinaryIO, content_type: str) -> None: ...

    def open(self, key: str, start: int, end: int) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...


def storage() -> FileStorage:
    """This app's file storage, made on first use from FILE_STORAGE (checked when the config is read)."""
    extensions = current_app.extensions
    if "file_storage" not in extensions:
        config = current_app.config
        if config["FILE_STORAGE"] == "s3":
            extensions["file_storage"] = S3Storage(config["S3_BUCKET"], config["S3_ENDPOINT_URL"], config["S3_REGION"])
        else:
            extensions["file_storage"] = GridFSStorage()
    return extensions["file_storage"]


class GridFSStorage:
    """GridFS in the database mongoengine is connected to; pymongo creates its indexes on the first upload."""

    def __init__(self):
        self.bucket = GridFSBucket(mongoengine.get_db())

    def put(self, key, stream, content_type):
        """Store `stream` under `key`, read a chunk (255 KiB) at a time."""
        self.bucket.upload_from_stream_with_id(key, key, stream, metadata={"contentType": content_type})

    def open(self, key, start, end):
        """The bytes [start, end) of `key`; Missing when there is none."""
        try:
            stored = self.bucket.open_download_stream(key)
        except NoFile:
            raise Missing(key) from None
        stored.seek(start)
        return _pieces(stored, end - start)

    def delete(self, key):
        """Remove `key`'s file and chunks (chunks of an upload cut short too)."""
        with suppress(NoFile):
            self.bucket.delete(key)


def _pieces(stored, length):
    try:
        while length > 0:
            piece = stored.read(min(CHUNK, length))
            if not piece:
                return
            length -= len(piece)
            yield piece
    finally:
        stored.close()


class S3Storage:
    """An S3 bucket through boto3; credentials from the usual AWS environment variables or instance role."""

    def __init__(self, bucket, endpoint_url=None, region=None):
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        # No thread pool of its own (the server runs on eventlet): parts go one after the other.
        self.transfer = TransferConfig(use_threads=False)

    def put(self, key, stream, content_type):
        """Upload `stream` (one request, or a multipart upload of 8 MiB parts for larger files)."""
        self.client.upload_fileobj(
            stream, self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=self.transfer
        )

    def open(self, key, start, end):
        """The bytes [start, end) of `key`, read as a ranged GET; Missing when there is none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        except self.client.exceptions.NoSuchKey:
            raise Missing(key) from None
        return _closing(answer["Body"])

    def delete(self, key):
        """Remove `key` (S3 answers a key that is gone as deleted)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _closing(body):
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
