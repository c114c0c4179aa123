"""Schemas for pins."""

from marshmallow import fields

from utils.schemas import StrictSchema
from utils.schemas.messages import MessageSchema


class PinListSchema(StrictSchema):
    messages = fields.List(fields.Nested(MessageSchema))
