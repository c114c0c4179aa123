"""Schemas for files: the upload form, the download query, and the file object."""

import io

from marshmallow import fields, validate
from werkzeug.datastructures import FileStorage

from utils.schemas import IdField, IsoDateTime, StrictSchema, room_ref
from utils.signed_urls import signed_url


class UploadedFile(fields.Field):
    """A file part of a multipart/form-data body, loaded as werkzeug's FileStorage; an empty one is refused."""

    default_error_messages = {"not_a_file": "Not a file part (give it a filename).", "empty": "The file is empty."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise self.make_error("not_a_file")
        empty = value.stream.seek(0, io.SEEK_END) == 0
        value.stream.seek(0)
        if empty:
            raise self.make_error("empty")
        return value


class UploadForm(StrictSchema):
    room = room_ref()
    file = UploadedFile(required=True, metadata={"description": "The file; its name is kept for downloads"})


class DownloadQuery(StrictSchema):
    expires = fields.String(load_default=None, validate=validate.Length(max=20))
    sig = fields.String(load_default=None, validate=validate.Length(max=100))


class FileSchema(StrictSchema):
    id = IdField()
    room = IdField()
    name = fields.String()
    content_type = fields.String(data_key="contentType")
    size = fields.Integer()
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    created_at = IsoDateTime(data_key="createdAt")
    url = fields.Function(lambda file: signed_url(file.id, "file"), metadata={"description": "Signed; expires"})
    thumbnail_url = fields.Function(
        lambda file: signed_url(file.id, "thumbnail") if file.thumbnail_type else None,
        data_key="thumbnailUrl",
        allow_none=True,
    )
