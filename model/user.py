"""User accounts."""

from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo import UpdateOne

# The prefix lookup reads this index in order: shortest usernames first, then by name.
BY_LENGTH = [("username_length", 1), ("username_key", 1)]


class User(Document):
    username = StringField(required=True)
    # Lower-cased username: "Alice" and "alice" are one account, so nobody can pose as another.
    username_key = StringField(required=True)
    # len(username): lookups by prefix answer the shortest names first, from an index.
    username_length = IntField(required=True)
    display_name = StringField(required=True)
    password_hash = StringField(required=True)
    role = StringField(required=True, choices=("user", "admin"), default="user")
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "users",
        "auto_create_index": False,
        "indexes": [{"fields": ["username_key"], "unique": True}, {"fields": [name for name, _ in BY_LENGTH]}],
    }


def fill_username_lengths(db):
    """Give users stored before `username_length` existed their length (once, at start-up)."""
    missing = db.users.find({"username_length": {"$exists": False}}, {"username_key": 1})
    updates = [UpdateOne({"_id": d["_id"]}, {"$set": {"username_length": len(d["username_key"])}}) for d in missing]
    if updates:
        db.users.bulk_write(updates, ordered=False)
