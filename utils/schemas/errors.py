"""The error object every failure carries (documentation only: errors are built by AppError)."""

from marshmallow import fields

from utils.schemas import StrictSchema


class ErrorBodySchema(StrictSchema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ErrorSchema(StrictSchema):
    error = fields.Nested(ErrorBodySchema, required=True)
