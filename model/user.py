"""User accounts."""

from mongoengine import DateTimeField, Document, StringField


class User(Document):
    username = StringField(required=True)
    # Lower-cased username: "Alice" and "alice" are one account, so nobody can pose as another.
    username_key = StringField(required=True)
    display_name = StringField(required=True)
    password_hash = StringField(required=True)
    role = StringField(required=True, choices=("user", "admin"), default="user")
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "users",
        "auto_create_index": False,
        "indexes": [{"fields": ["username_key"], "unique": True}],
    }
