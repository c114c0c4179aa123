"""Move old messages to the archive: `python -m jobs.archive [--older-than-days N] [--room ID] [--dry-run]
[--batch-size N]`. Prints one summary line; exits 0 on success (also when another run is in progress),
1 on failure, 2 on bad arguments."""

import argparse
import logging
import sys

from jobs import build_app
from services.archive import AnotherRun, run_archive
from utils.errors import NotFound
from utils.ids import parse_id

log = logging.getLogger("chat.archive")


def at_least(minimum):
    """An argparse type: a whole number not below `minimum`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def room_id(text):
    oid = parse_id(text)
    if oid is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a room id")
    return oid


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m jobs.archive", description="Move old messages to the archive.")
    parser.add_argument("--older-than-days", type=at_least(0), help="default: ARCHIVE_AFTER_DAYS (30)")
    parser.add_argument("--room", type=room_id, help="only this room")
    parser.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    parser.add_argument("--batch-size", type=at_least(1), default=1000, help="messages per batch (1000)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    app = build_app()
    days = app.config["ARCHIVE_AFTER_DAYS"] if args.older_than_days is None else args.older_than_days
    with app.app_context():
        try:
            config = app.config
            report = run_archive(
                days, args.room, args.batch_size, args.dry_run, config["ARCHIVE_LEASE_SECONDS"], config["GAP_SECONDS"]
            )
        except AnotherRun:
            print("archive: another run is in progress; nothing done")
            return 0
        except NotFound as error:
            print(f"archive: --room: {error.message}", file=sys.stderr)
            return 2
        except Exception as error:
            log.exception("archive run failed")
            print(f"archive: failed: {error}", file=sys.stderr)
            return 1
    if report.dry_run:
        line = (
            f"archive (dry run): would move {report.scanned} messages older than {days} days "
            f"in {report.batches} batches"
        )
    else:
        line = (
            f"archive: scanned {report.scanned}, moved {report.moved}, batches {report.batches}, "
            f"rooms {len(report.rooms)}, {report.seconds:.2f}s (older than {days} days)"
        )
    print(line)  # the run's one summary line (stdout); logs and failures go to stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
