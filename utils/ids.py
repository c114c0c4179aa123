"""ObjectId parsing and lookup by id that never raise on client input."""

from bson import ObjectId
from bson.errors import InvalidId


def parse_id(value):
    """Return `value` as an ObjectId, or None when it is not a valid 24-hex id."""
    if isinstance(value, ObjectId):
        return value
    if not isinstance(value, str):
        return None
    try:
        return ObjectId(value)
    except InvalidId:
        return None


def get_by_id(document, value):
    """Return the `document` whose id `value` names, or None (a malformed id included)."""
    oid = parse_id(value)
    return document.objects(id=oid).first() if oid else None
