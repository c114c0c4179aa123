"""Schemas for the mentions feed."""

from utils.schemas import ObjectIdString, StrictSchema, page_limit


class MentionsQuery(StrictSchema):
    limit = page_limit()
    before = ObjectIdString(load_default=None)
