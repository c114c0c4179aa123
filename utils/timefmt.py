"""Timezone-aware UTC time helpers; the wire format is ISO-8601 with milliseconds and a `Z`."""

from datetime import UTC, datetime


def utcnow():
    """Return the current UTC time, truncated to the milliseconds MongoDB stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value):
    """Format an aware (or UTC-naive) datetime as `2026-11-21T10:15:30.123Z`; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
