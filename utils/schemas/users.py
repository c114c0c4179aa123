"""Schemas for finding users: the prefix query and its answer (a user itself is `accounts.UserSchema`)."""

from marshmallow import fields, validate

from utils.schemas import StrictSchema
from utils.schemas.accounts import FullMatch, UserSchema

# What a username may hold, 1 to 32 of it: anything else could match nobody.
PREFIX = FullMatch(r"^[A-Za-z0-9_.-]{1,32}$", error="1 to 32 of letters, digits, '_', '.', '-'.")


class UserSearchQuery(StrictSchema):
    q = fields.String(required=True, validate=PREFIX, metadata={"description": "the start of a username, any case"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=50))


class UserListSchema(StrictSchema):
    users = fields.List(fields.Nested(UserSchema))
