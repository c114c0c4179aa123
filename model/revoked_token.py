"""Revoked JWT ids, kept until the token would have expired anyway."""

from mongoengine import DateTimeField, Document, StringField


class RevokedToken(Document):
    jti = StringField(required=True)
    expires_at = DateTimeField(required=True)

    meta = {
        "collection": "revoked_tokens",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["jti"], "unique": True},
            {"fields": ["expires_at"], "expireAfterSeconds": 0},
        ],
    }
