"""The last run of each job, for operators and `GET /metrics`: when it ran, whether it succeeded, what it did."""

from mongoengine import BooleanField, DateTimeField, Document, FloatField, IntField, StringField

from utils.timefmt import utcnow


class JobRun(Document):
    name = StringField(primary_key=True)
    last_run_at = DateTimeField(required=True)
    last_ok = BooleanField(required=True)
    # Of the last successful run.
    last_success_at = DateTimeField()
    last_moved = IntField(default=0)
    last_seconds = FloatField(default=0.0)

    meta = {"collection": "job_runs", "auto_create_index": False}


def record_run(name: str, ok: bool, moved: int = 0, seconds: float = 0.0) -> None:
    """Record a run of job `name` that ended now: a success with what it moved, or a failure."""
    now = utcnow()
    fields = {"last_run_at": now, "last_ok": ok}
    if ok:
        fields |= {"last_success_at": now, "last_moved": moved, "last_seconds": seconds}
    JobRun._get_collection().update_one({"_id": name}, {"$set": fields}, upsert=True)


def last_run(name: str) -> JobRun | None:
    """The record of job `name`'s last run, or None when it never ran."""
    return JobRun.objects(name=name).first()
