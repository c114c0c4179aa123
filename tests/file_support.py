"""Test helpers for files: the two storage backends (GridFS in the test database, S3 on a local moto server)
and what each holds, the tests that need only one, and images made or damaged to order."""

import io
import struct
import subprocess
import sys
import time
import zlib

import boto3
import pytest
import requests
from PIL import Image

from model.embedded import free_port

BUCKET = "chat-files"
BACKENDS = ("gridfs", "s3")
# A test of what is decided before bytes are stored or read, or in the database beside them (validation, access,
# signatures, names, attachment claims), runs on the first backend only: what the bytes go through in storage,
# kept, served in ranges, refused or deleted, is proved on each backend by the other tests.
storage_independent = pytest.mark.parametrize("storage", BACKENDS[:1], indirect=True)


class MotoS3:
    """moto's S3-compatible server in a subprocess on a free port, with one bucket."""

    def __init__(self, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None

    def start(self, timeout=30):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def env(self):
        """The settings of a server (or job) storing files here."""
        return {
            "FILE_STORAGE": "s3",
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }

    def clear(self):
        for key in self.keys():
            self.client().delete_object(Bucket=BUCKET, Key=key)

    def keys(self):
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Storage:
    """One backend as the tests see it: the settings that select it, and the keys it holds."""

    def __init__(self, backend, db, s3=None):
        self.backend, self.db, self.s3 = backend, db, s3

    def env(self):
        return self.s3.env() if self.backend == "s3" else {"FILE_STORAGE": "gridfs"}

    def clear(self):
        """Empty the bucket (the database, GridFS included, is emptied before each test by `clean_db`)."""
        if self.backend == "s3":
            self.s3.clear()

    def keys(self):
        """Every key stored: GridFS files (and chunks without a file), or the bucket's objects."""
        if self.backend == "s3":
            return self.s3.keys()
        return {str(key) for key in self.db["fs.files"].distinct("_id")} | {
            str(key) for key in self.db["fs.chunks"].distinct("files_id")
        }


def image_bytes(image_format="PNG", size=(640, 480), **save):
    """An image of that size, with a pattern (a flat one compresses to nothing)."""
    image = Image.new("RGB", size)
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, image_format, **save)
    return out.getvalue()


def png_declaring(width, height):
    """A valid-looking PNG of a few hundred bytes whose header declares width x height (a decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )
