"""Schemas for accounts: what register and login accept, what a user looks like."""

from marshmallow import ValidationError, fields, validate

from utils.schemas import IdField, IsoDateTime, Name, StrictSchema


class FullMatch(validate.Regexp):
    """A pattern the whole value must match: with `re.match`, `$` also matches before a final newline."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# Anchored as well, for the OpenAPI document's `pattern`.
USERNAME = FullMatch(r"^[A-Za-z0-9_.-]{3,32}$", error="3 to 32 of letters, digits, '_', '.', '-'.")


class RegisterSchema(StrictSchema):
    username = fields.String(required=True, validate=USERNAME)
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))
    display_name = Name(data_key="displayName", load_default=None)


class LoginSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=128))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class UserSchema(StrictSchema):
    id = IdField()
    username = fields.String()
    display_name = fields.String(data_key="displayName")
    role = fields.String()
    created_at = IsoDateTime(data_key="createdAt")


class TokenPairSchema(StrictSchema):
    access_token = fields.String(data_key="accessToken")
    refresh_token = fields.String(data_key="refreshToken")


class SessionSchema(TokenPairSchema):
    user = fields.Nested(UserSchema)
