"""Files: upload, download, thumbnail."""

from flask import g

from middleware.auth import auth_optional, auth_required
from middleware.limits import per_user
from services import files
from utils.api import endpoint
from utils.downloads import send_bytes
from utils.schemas.files import DownloadQuery, FileSchema, UploadForm


@auth_required
@per_user("upload")
@endpoint(form=UploadForm(), response=FileSchema(), status=201, errors=(403, 404, 429))
def upload(form):
    """Upload a file (multipart/form-data: `file`, and `room`) to a room the caller may post in."""
    return files.do_upload(g.user, form["room"], form["file"])


@auth_optional
@endpoint(query=DownloadQuery(), status=200, also=(206,), errors=(404, 416), download=True)
def download(file_id, query):
    """A file's bytes (Authorization header, or the file object's signed `url`); `Range` answers 206."""
    return _send(files.downloadable(g.user, file_id, False, **query))


@auth_optional
@endpoint(query=DownloadQuery(), status=200, also=(206,), errors=(404, 416), download=True)
def thumbnail(file_id, query):
    """An image's thumbnail, at most 320 pixels on its long side (Authorization, or its signed `thumbnailUrl`)."""
    return _send(files.downloadable(g.user, file_id, True, **query))


def _send(stored):
    return send_bytes(stored.open, stored.size, stored.content_type, stored.name, stored.inline)
