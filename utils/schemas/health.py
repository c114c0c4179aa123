"""The health report."""

from marshmallow import fields, validate

from utils.schemas import StrictSchema


class HealthSchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(("ok", "degraded")))
    db = fields.String(validate=validate.OneOf(("ok", "down")))
    queue = fields.String(validate=validate.OneOf(("ok", "off", "down")))
