"""Schemas for direct messages."""

from marshmallow import fields, validate

from utils.schemas import ObjectIdString, StrictSchema


class DmOpenSchema(StrictSchema):
    # A bound on what is read; the rule (1 to 9 others, duplicates and the caller left out) is the service's.
    user_ids = fields.List(ObjectIdString(), data_key="userIds", required=True, validate=validate.Length(max=100))
