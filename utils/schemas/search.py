"""Schemas for message search: the query string (the answer is a page of messages)."""

from marshmallow import ValidationError, fields, post_load, validate

from utils.schemas import ObjectIdString, StrictSchema, page_limit
from utils.search_keys import Query


def _has_a_word(text):
    if Query.parse(text) is None:
        raise ValidationError("Must hold at least one word (letters or digits).")


class SearchQuery(StrictSchema):
    q = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), _has_a_word],
        metadata={"description": "Words to find, in any order, case or accents; the last may be a word's start."},
    )
    room = fields.String(
        validate=validate.Length(min=1, max=64),
        load_default=None,
        metadata={"description": "One room (id or name); without it, every room the caller may read."},
    )
    limit = page_limit()
    before = ObjectIdString(load_default=None, metadata={"description": "The previous page's `nextCursor`."})

    @post_load
    def parse(self, data, **kwargs):
        """Hand the service the parsed query."""
        return {**data, "q": Query.parse(data["q"])}
