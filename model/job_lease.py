"""Leases that keep two runs of a job from working at once; an expired lease is free."""

from mongoengine import DateTimeField, Document, StringField


class JobLease(Document):
    name = StringField(primary_key=True)
    owner = StringField(required=True)
    expires_at = DateTimeField(required=True)

    meta = {"collection": "job_leases", "auto_create_index": False}
