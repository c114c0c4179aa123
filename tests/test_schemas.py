"""The schemas' fast dump (`StrictSchema._serialize`) gives exactly what marshmallow's own gives."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from bson import ObjectId
from flask import Flask
from mongoengine import Document, ListField, ReferenceField, StringField

from model.file import Attachment
from model.message import Message, Reaction
from utils import schemas, signed_urls
from utils.schemas import StrictSchema
from utils.schemas.messages import MessageAckSchema, MessagePageSchema, MessageSchema

AT = datetime(2026, 11, 30, 5, 0, 1, 234567, tzinfo=UTC)


@pytest.fixture(autouse=True)
def app(monkeypatch):
    """Signed file URLs need the app's secret, and a clock that does not tick between the two dumps compared."""
    monkeypatch.setattr(signed_urls, "time", SimpleNamespace(time=lambda: 1_800_000_000.5))
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY="test-secret", FILE_URL_TTL=600)
    with app.app_context():
        yield


def marshmallows_own(monkeypatch, schema, obj, **kwargs):
    with monkeypatch.context() as patch:
        patch.delattr(StrictSchema, "_serialize")
        return schema.dump(obj, **kwargs)


def _attachment(thumbnail):
    return Attachment(
        id=ObjectId(), room=ObjectId(), name="cat.png", content_type="image/png", size=123, width=None if not
        thumbnail else 640, height=480, thumbnail_type="image/webp" if thumbnail else None, created_at=AT,
    )  # fmt: skip


def _message(**fields):
    message = Message(room=ObjectId(), user_id=ObjectId(), user_name="alice", **{"message_body": "hi @bob", **fields})
    message.id, message.seq, message.time_stamp = ObjectId(), 7, AT
    return message


RICH = {
    "client_id": "c-1",
    "edited_at": AT,
    "reply_to": ObjectId(),
    "reply_count": 3,
    "last_reply_at": AT,
    "reactions": [Reaction(emoji="👍", user_ids=[ObjectId(), ObjectId()]), Reaction(emoji="🎉", user_ids=[])],
    "mentions": [ObjectId()],
    "mentions_room": True,
    "pinned_at": AT,
    "attachments": [_attachment(True), _attachment(False)],
    "search_keys": ["hi", "bob"],
}


@pytest.mark.parametrize("fields", [{}, RICH, {"deleted": True, "message_body": ""}], ids=["plain", "rich", "deleted"])
def test_a_message_dumps_as_marshmallow_dumps_it(monkeypatch, fields):
    message = _message(**fields)
    for schema in (MessageSchema(), MessageSchema(only=("id", "room"))):
        assert schema.dump(message) == marshmallows_own(monkeypatch, schema, message)
    ack = {"message": message}
    assert MessageAckSchema().dump(ack) == marshmallows_own(monkeypatch, MessageAckSchema(), ack)
    page = {"messages": [message, _message()], "next_cursor": None}
    assert MessagePageSchema().dump(page) == marshmallows_own(monkeypatch, MessagePageSchema(), page)


def test_the_dump_reads_what_the_object_has(monkeypatch):
    """Dicts and plain objects as marshmallow reads them: a key that is absent is left out, properties are read."""
    schema = MessageSchema()
    partial = {"id": ObjectId(), "message_body": "x", "pinned": False}
    assert schema.dump(partial) == marshmallows_own(monkeypatch, schema, partial)
    assert set(schema.dump(partial)) == {"id", "messageBody", "pinned"}
    assert schema.dump([partial], many=True) == marshmallows_own(monkeypatch, schema, [partial], many=True)
    assert schema.dump(_message(pinned_at=AT))["pinned"] is True  # a property, not a stored field


class Note(Document):
    """A document with a reference: its stored value is an id, its descriptor fetches the document."""

    text = StringField()
    tags = ListField(StringField())
    author = ReferenceField("Note")
    meta = {"collection": "notes"}


def test_a_reference_is_read_through_its_descriptor():
    assert schemas._stored_as_read(Note) == {"id", "text", "tags"}
