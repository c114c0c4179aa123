"""Schemas for room bans."""

from marshmallow import fields

from utils.schemas import IdField, IsoDateTime, StrictSchema
from utils.schemas.accounts import UserSchema


class BanSchema(StrictSchema):
    user = fields.Nested(UserSchema)
    banned_by = IdField(data_key="bannedBy")
    created_at = IsoDateTime(data_key="createdAt")


class BanListSchema(StrictSchema):
    bans = fields.List(fields.Nested(BanSchema))
