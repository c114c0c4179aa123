"""Start-up migrations: each brings a database's stored documents up to date once, recorded in `migrations`."""

import functools

import mongoengine

from utils.timefmt import utcnow


def once(name):
    """Make `migrate(db)` a start-up migration: it runs unless the database (by default the connected one) records
    `name` as done, and is recorded when it ends. A run cut short runs again at the next start-up, so each must be
    safe to run again."""

    def decorate(migrate):
        @functools.wraps(migrate)
        def run(db=None):
            db = mongoengine.get_db() if db is None else db
            if db.migrations.find_one({"_id": name}):
                return
            migrate(db)
            db.migrations.update_one({"_id": name}, {"$set": {"at": utcnow()}}, upsert=True)

        return run

    return decorate
