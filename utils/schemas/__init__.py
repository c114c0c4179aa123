"""marshmallow helpers: strict loading into the contract's validation_error, and shared fields."""

import re
import unicodedata
from functools import cache

from marshmallow import RAISE, Schema, ValidationError, fields, missing, post_load, pre_load, validate, validates_schema
from mongoengine import fields as db_fields

from utils.errors import ValidationFailed
from utils.ids import parse_id
from utils.timefmt import iso


class StrictSchema(Schema):
    """A schema that rejects unknown fields (so operator keys such as `$gt` never get through) and lone surrogates."""

    class Meta:
        unknown = RAISE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What each dumped field becomes: (its key in the output, the attribute it reads, its name, the field).
        self._plan = [
            (field.data_key or name, field.attribute or name, name, field) for name, field in self.dump_fields.items()
        ]

    def _serialize(self, obj, *, many=False):
        """marshmallow's own, without its per-field plumbing (the hot path: every message broadcast and page).

        Each field's value is read once, from a document's stored values where its descriptor would
        only hand back the same thing (mongoengine's list descriptors cost microseconds a read), and
        converted by the field's own `_serialize`, as marshmallow does. A message dumps in a third of
        the time (docs/PERFORMANCE.md); tests/test_schemas.py holds the result equal to marshmallow's.
        """
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        dumped = {}
        for key, attr, name, field in self._plan:
            value = _value_of(obj, attr) if field._CHECK_ATTRIBUTE else None
            if value is missing:
                value = field.dump_default() if callable(field.dump_default) else field.dump_default
                if value is missing:
                    continue
            dumped[key] = field._serialize(value, name, obj)
        return dumped

    @pre_load
    def no_lone_surrogates(self, data, **kwargs):
        """Refuse a string holding half a UTF-16 pair (`"\\ud800"` in JSON): no database can store it."""
        if isinstance(data, dict):
            bad = [key for key, value in data.items() if _has_surrogate(key) or _has_surrogate(value)]
            if bad:
                raise ValidationError({str(key): ["Contains a lone UTF-16 surrogate."] for key in bad})
        return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _value_of(obj, attr):
    """What marshmallow's default accessor reads, faster: a dict's item, a document's stored value, an attribute."""
    if isinstance(obj, dict):
        return obj.get(attr, missing)
    stored = getattr(obj, "_data", None)
    if stored is not None and attr in stored and attr in _stored_as_read(type(obj)):
        return stored[attr]
    return getattr(obj, attr, missing)


# mongoengine fields whose stored value is what their descriptor returns (no reference to dereference).
_PLAIN = (
    db_fields.StringField,
    db_fields.IntField,
    db_fields.BooleanField,
    db_fields.DateTimeField,
    db_fields.ObjectIdField,
    db_fields.EmbeddedDocumentField,
)


@cache
def _stored_as_read(document):
    """The fields of a mongoengine document class whose stored value can be read without the descriptor."""

    def plain(field):
        if isinstance(field, db_fields.ListField):
            return plain(field.field)
        return isinstance(field, _PLAIN)

    return frozenset(name for name, field in getattr(document, "_fields", {}).items() if plain(field))


def _has_surrogate(value):
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(key) or _has_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


def load(schema, data):
    """Validate `data` with `schema`, raising ValidationFailed with per-field details."""
    if not isinstance(data, dict):
        raise ValidationFailed("payload must be an object", {"_schema": ["Expected an object."]})
    try:
        return schema.load(data)
    except ValidationError as err:
        raise ValidationFailed("invalid input", _flatten(err.messages)) from None


def _flatten(messages):
    """Turn marshmallow's nested messages into `{field: [reasons]}`."""
    if isinstance(messages, list):
        return {"_schema": [str(m) for m in messages]}
    flat = {}
    for field, value in messages.items():
        if isinstance(value, dict):
            flat[field] = [str(item) for inner in value.values() for item in _as_list(inner)]
        else:
            flat[field] = [str(item) for item in _as_list(value)]
    return flat


def _as_list(value):
    return value if isinstance(value, list) else [value]


class Trimmed(fields.String):
    """A string stripped of surrounding white space before its length is validated."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


# Control and format characters (zero-width, bidi overrides) and line or paragraph separators:
# unseen, they make look-alike names, reorder what is shown around them and split log lines.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def visible(allow=""):
    """Return a validator refusing hidden characters (HIDDEN_CATEGORIES) other than those in `allow`."""

    def check(value):
        if any(unicodedata.category(char) in HIDDEN_CATEGORIES and char not in allow for char in value):
            raise ValidationError("Must not contain control, zero-width or bidi characters.")

    return check


class Name(Trimmed):
    """A name people read (a room's, a display name): trimmed, 1 to 64 characters, none of them hidden."""

    def __init__(self, **kwargs):
        super().__init__(validate=[validate.Length(min=1, max=64), visible()], **kwargs)


class StrictBool(fields.Boolean):
    """A JSON boolean: `true` or `false`, not "yes" or 1."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ObjectIdString(fields.String):
    """A 24-hex ObjectId given as a string, loaded as an ObjectId."""

    default_error_messages = {"invalid_id": "Not a valid id."}

    def _deserialize(self, value, attr, data, **kwargs):
        oid = parse_id(super()._deserialize(value, attr, data, **kwargs))
        if oid is None:
            raise self.make_error("invalid_id")
        return oid


class IsoDateTime(fields.Field):
    """Dump an aware datetime as ISO-8601 UTC with milliseconds and `Z`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso(value)


class IdField(fields.Field):
    """Dump an ObjectId (or None) as its hex string."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


def _scalar(value):
    if isinstance(value, dict | list) or (isinstance(value, str) and len(value) > 256):
        raise ValidationError("Not a legacy value (a string of at most 256 characters, a number or null).")
    return True


_LEGACY = {
    "deprecated": True,
    "description": "Sent by clients of the original service; ignored (identity from the token, time from the server). "
    "Only without `room`.",
}


class LegacyFields(Schema):
    """What clients of the original single-room service still send: accepted and ignored where `room` is absent.

    Identity comes from the token and time from the server, never from these. Loading sets
    `legacy` when any was sent, so such a socket also gets the original events.
    """

    user_id = fields.Raw(data_key="userId", load_only=True, validate=_scalar, metadata=_LEGACY)
    user_name = fields.Raw(data_key="userName", load_only=True, validate=_scalar, metadata=_LEGACY)
    time_stamp = fields.Raw(data_key="timeStamp", load_only=True, validate=_scalar, metadata=_LEGACY)

    @validates_schema
    def only_without_room(self, data, **kwargs):
        sent = [self.fields[name].data_key for name in ("user_id", "user_name", "time_stamp") if name in data]
        if sent and data.get("room") is not None:
            raise ValidationError({key: ["Unknown field."] for key in sent})

    @post_load
    def drop_legacy(self, data, **kwargs):
        legacy = [data.pop(name) for name in ("user_id", "user_name", "time_stamp") if name in data]
        return {**data, "legacy": bool(legacy)}


def room_ref(**kwargs):
    """The `room` field of requests and events: an id or a room name; absent means `general`."""
    return fields.String(validate=validate.Length(min=1, max=64), load_default=None, allow_none=True, **kwargs)


def page_limit():
    """The `limit` query field: 1..100, default 50."""
    return fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
