"""The health reports."""

from marshmallow import fields, validate

from utils.schemas import StrictSchema


class HealthSchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(("ok", "degraded")))
    db = fields.String(validate=validate.OneOf(("ok", "down")))
    queue = fields.String(validate=validate.OneOf(("ok", "off", "down")))


class ReadySchema(HealthSchema):
    status = fields.String(validate=validate.OneOf(("ok", "degraded", "draining")))


class LiveSchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(("ok",)))
