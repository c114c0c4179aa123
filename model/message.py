"""Live chat messages; `MessageFields` is shared with the archive.

Every message has `seq`, its position in its room: allocated by the writer
(`model/message_log.py`) in the order messages are stored, whatever process stores them,
so cursors follow it. A position whose writer failed is filled by a tombstone
(`{room, seq, gap: true}`, never shown), so readers can tell "never coming" from
"still being written".
"""

from datetime import datetime

from bson import SON, ObjectId
from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from model.file import Attachment
from model.migrations import once

# Indexes an earlier version built, dropped at start-up (`drop_retired_indexes`): every message stored
# paid an entry in each, mentioning anyone or not (docs/PERFORMANCE.md). Mentions are found by their
# search keys instead (`utils/search_keys.py`); pin slots live in their own collection (`model/pin.py`);
# the thread index holds replies alone (THREAD_INDEX).
RETIRED_INDEXES = (
    "room_1_mentions_1_seq_1",
    "room_1_mentions_room_1_seq_1",
    "mentions_1__id_-1",
    "room_1_mentions_room_1__id_-1",
    "room_1_pin_slot_1",
    "room_1_reply_to_1_seq_1",
)
# The live and the archived messages (`model/archived_message.py`): the same fields and indexes.
COLLECTIONS = ("messages", "archived_messages")
# Thread pages: one root's replies in position order, from an index of the replies alone, so a message that
# answers nothing pays no entry in it. SecantusDB's planner takes an index only for a query on its fields alone,
# and a partial one only when the query holds its filter as an equality: replies carry `is_reply: true` for it,
# and every query of a thread names it (`replies_of`).
THREAD_INDEX = {"fields": ["is_reply", "room", "reply_to", "seq"], "partialFilterExpression": {"is_reply": True}}


class Reaction(EmbeddedDocument):
    """One emoji on a message and who used it; the list keeps the order emoji were first used."""

    emoji = StringField(required=True)
    user_ids = ListField(ObjectIdField())


class MessageFields(Document):
    room = ObjectIdField(required=True)
    seq = IntField(required=True)
    user_id = ObjectIdField(required=True)
    user_name = StringField(required=True)
    message_body = StringField(default="")
    time_stamp = DateTimeField(required=True)
    client_id = StringField(null=True)
    edited_at = DateTimeField(null=True)
    deleted = BooleanField(default=False)
    # Threads: a reply names its thread's root; the root counts its live, undeleted replies.
    reply_to = ObjectIdField(null=True)
    is_reply = BooleanField()  # true on a reply, absent on the rest: what the thread index holds (THREAD_INDEX)
    reply_count = IntField(default=0)
    last_reply_at = DateTimeField(null=True)
    reactions = ListField(EmbeddedDocumentField(Reaction))
    # Members named by `@username`; `@room`/`@here` from a manager sets mentions_room instead of listing everyone.
    # Both are found by the mention keys among search_keys.
    mentions = ListField(ObjectIdField())
    mentions_room = BooleanField(default=False)
    # Set while the message is pinned; its slot among its room's pins is in `model/pin.py`.
    pinned_at = DateTimeField(null=True)
    # The files it carries (`model/file.py`), their metadata copied in so one read serves a page of history.
    attachments = ListField(EmbeddedDocumentField(Attachment))
    # A position whose writer failed: never shown, it only tells readers not to wait for it.
    gap = BooleanField()
    # What the archiver leaves in the live collection of a message with a clientId, so a retry
    # months later still finds the original instead of storing a second copy.
    stub = BooleanField()
    # The body's search keys and its mentions' (`utils/search_keys.py`), written with it; a deleted message has none.
    search_keys = ListField(StringField())
    # Each change broadcast as `message_updated` increments it (`$inc` of "v") in its own write: every process
    # delivers a message's states in this order, whichever made them (`utils/transport/ordering.py`).
    version = IntField(db_field="v")

    meta = {"abstract": True}

    @property
    def pinned(self):
        return self.pinned_at is not None


class Message(MessageFields):
    archived = False

    meta = {
        "collection": COLLECTIONS[0],
        "auto_create_index": False,
        "indexes": [
            # History pages walk one room in order, both directions; one message (or tombstone) a position.
            {"fields": ["room", "seq"], "unique": True},
            # Idempotent sends: one message per (user, clientId); messages without a clientId are exempt.
            # Archived messages leave a stub here (`services/archive.py`) so a late retry still finds them.
            {
                "fields": ["user_id", "client_id"],
                "unique": True,
                "partialFilterExpression": {"client_id": {"$type": "string"}},
            },
            dict(THREAD_INDEX),
            # Search (`model/message_search.py`): the messages holding one key, newest first, in any room;
            # mention keys too, for the mentions feed and mention counts (`services/mentions.py`).
            {"fields": ["search_keys", "-id"]},
        ],
    }


def drop_retired_indexes(db):
    """Drop what RETIRED_INDEXES names from the live and archived messages, where a database still has it."""
    for collection in map(db.get_collection, COLLECTIONS):
        for name in set(RETIRED_INDEXES) & set(collection.index_information()):
            collection.drop_index(name)


@once("reply-flags")
def flag_replies(db):
    """Mark the replies stored before replies carried `is_reply`, live and archived (before THREAD_INDEX is built)."""
    for name in COLLECTIONS:
        db[name].update_many({"reply_to": {"$type": "objectId"}}, {"$set": {"is_reply": True}})


def replies_of(room_id: ObjectId, root_id: ObjectId, seq: dict) -> dict:
    """The filter of a thread's replies at positions `seq`, as THREAD_INDEX answers it."""
    return {"is_reply": True, "room": room_id, "reply_to": root_id, "seq": seq}


# A new message, as mongoengine would build and encode it, without its per-field descriptors:
# `Message(**values)` and `to_mongo()` cost about 100 µs a message, a tenth of the server's CPU in
# a burst (docs/PERFORMANCE.md). tests/test_message_build.py holds both equal to mongoengine's own,
# so a field added or a mongoengine upgrade that changes what they do fails there.
_FIELDS = [(name, Message._fields[name]) for name in Message._fields_ordered]
# Values a field stores as they are: what its `to_mongo` returns unchanged.
_PLAIN = frozenset((str, int, bool, ObjectId, datetime))


def new_message(**values) -> Message:
    """`Message(**values)`, for values of the fields' own types."""
    data = {name: field.default() if callable(field.default) else field.default for name, field in _FIELDS}
    data.update(values)
    message = object.__new__(Message)
    for name, value in (("_initialised", False), ("_created", True), ("_dynamic_fields", SON()), ("_data", data)):
        object.__setattr__(message, name, value)
    message._cls = Message._class_name
    message._initialised = True
    return message


def stored_form(message: Message) -> dict:
    """`message.to_mongo()`: the document to insert."""
    data = message._data
    stored = {"_id": None}
    for name, field in _FIELDS:
        value = data.get(name)
        if value is not None:
            value = _encoded(field, value)
        if value is not None or field.null:
            stored[field.db_field] = value
    return stored


def _encoded(field, value):
    if type(value) in _PLAIN:
        return value
    if type(value) is list and all(type(item) in _PLAIN for item in value):  # not a subclass: BaseList converts
        return list(value)
    return field.to_mongo(value)
