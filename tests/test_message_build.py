"""`new_message` and `stored_form` (model/message.py) against mongoengine's own `Message(...)` and `to_mongo()`."""

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from model.file import Attachment
from model.message import Message, new_message, stored_form

ROOM, USER = ObjectId(), ObjectId()
SENDS = {
    "plain": {"room": ROOM, "user_id": USER, "user_name": "bob", "message_body": "hi 1:2", "client_id": "c-1",
              "reply_to": None, "is_reply": None, "mentions": [], "mentions_room": False,
              "search_keys": ["1", "2", "h", "hi"]},
    "reply naming people": {"room": ROOM, "user_id": USER, "user_name": "ann", "message_body": "@bob @room",
                            "client_id": None, "reply_to": ObjectId(), "is_reply": True,
                            "mentions": [ObjectId(), ObjectId()],
                            "mentions_room": True, "search_keys": []},
    "few fields": {"room": ROOM, "user_id": USER, "user_name": "ann"},
}  # fmt: skip
FILE = {"id": ObjectId(), "room": ROOM, "name": "a.png", "content_type": "image/png", "size": 3, "width": 1,
        "height": 2, "created_at": datetime(2026, 1, 1, tzinfo=UTC)}  # fmt: skip


def _state(message):
    """What a document is made of: its values, its flags, its own attributes, whether it tracks changes."""
    return (
        message._data,
        message._initialised,
        message._created,
        message._dynamic_fields,
        vars(message),
        hasattr(message, "_changed_fields"),
    )


def _stored(values):
    """Both builds of `values`, then given what the send path gives a message before storing it."""
    built = Message(**values), new_message(**values)
    for message in built:
        message.id, message.seq, message.time_stamp = ObjectId("5f0000000000000000000001"), 7, datetime(2026, 1, 1)
        message.attachments = [Attachment(**FILE)]
    return built


@pytest.mark.parametrize("values", SENDS.values(), ids=SENDS.keys())
def test_a_new_message_is_built_as_mongoengine_builds_it(values):
    mongoengine_built, built = Message(**values), new_message(**values)
    assert _state(built) == _state(mongoengine_built)


@pytest.mark.parametrize("values", SENDS.values(), ids=SENDS.keys())
def test_a_new_message_is_stored_as_mongoengine_encodes_it(values):
    mongoengine_built, built = _stored(values)
    assert _state(built) == _state(mongoengine_built)
    expected = mongoengine_built.to_mongo().to_dict()
    for message in (mongoengine_built, built):
        stored = stored_form(message)
        assert stored == expected and list(stored) == list(expected)
