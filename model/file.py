"""Uploaded files: what storage holds under each file's id (`services/file_storage.py`), and who holds the file.

A file is free until a message takes it: `message` names the message, and `claimed_at`
stays set until that message is stored, so a claim whose sender died is found and undone
(`services/files.py`). A file of a deleted message or room is `doomed`: it is served no
more, and its bytes go before its record, so a crash halfway leaves a record to finish.
"""

from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    EmbeddedDocument,
    IntField,
    ObjectIdField,
    StringField,
)


class File(Document):
    room = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    # The uploader's name for it, cleaned; only ever shown (Content-Disposition), never a storage key.
    name = StringField(required=True)
    # Detected from the bytes, never taken from the client.
    content_type = StringField(required=True)
    size = IntField(required=True)
    # Images only: their size as shown (EXIF orientation applied), and their thumbnail.
    width = IntField(null=True)
    height = IntField(null=True)
    thumbnail_type = StringField(null=True)
    thumbnail_size = IntField(null=True)
    created_at = DateTimeField(required=True)
    message = ObjectIdField(null=True)
    claimed_at = DateTimeField()
    doomed = BooleanField()

    meta = {
        "collection": "files",
        "auto_create_index": False,
        "indexes": [
            # A message's files; with `message` null, the free uploads by age (the cleanup job).
            {"fields": ["message", "created_at"]},
            # A deleted room's files.
            {"fields": ["room"]},
            # Set only while a send stores its message, and on files waiting to be deleted.
            {"fields": ["claimed_at"], "sparse": True},
            {"fields": ["doomed"], "sparse": True},
        ],
    }


class Attachment(EmbeddedDocument):
    """A file as its message carries it: the file's metadata, copied when the message took it, so a page of
    history (archived ones too) is one read."""

    id = ObjectIdField(required=True)
    room = ObjectIdField(required=True)
    name = StringField(required=True)
    content_type = StringField(required=True)
    size = IntField(required=True)
    width = IntField(null=True)
    height = IntField(null=True)
    thumbnail_type = StringField(null=True)
    created_at = DateTimeField(required=True)

    @classmethod
    def of(cls, file: File) -> "Attachment":
        """The attachment of a stored file."""
        return cls(**{name: getattr(file, name) for name in cls._fields})
