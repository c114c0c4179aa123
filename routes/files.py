"""Files: uploads to a room (multipart), downloads by token or signed URL, image thumbnails."""

from controller import files

RULES = [
    ("POST", "/files", files.upload),
    ("GET", "/files/<file_id>", files.download),
    ("GET", "/files/<file_id>/thumbnail", files.thumbnail),
]
