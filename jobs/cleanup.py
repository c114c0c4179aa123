"""Remove uploads no message took: `python -m jobs.cleanup [--older-than-hours N] [--dry-run]`. Also finishes
removing the files of deleted messages and rooms, and gives back files held by sends that died. Prints one
summary line; exits 0 on success, 1 on failure, 2 on bad arguments. Safe to rerun after a crash."""

import argparse
import logging
import sys

from jobs import build_app
from jobs.archive import at_least
from services.files import run_cleanup

log = logging.getLogger("chat.cleanup")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m jobs.cleanup", description="Remove uploads no message took.")
    # At least an hour: an upload still arriving is never taken for an abandoned one.
    parser.add_argument("--older-than-hours", type=at_least(1), default=24, help="default: 24")
    parser.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    app = build_app()
    with app.app_context():
        try:
            report = run_cleanup(args.older_than_hours, args.dry_run)
        except Exception as error:
            log.exception("cleanup run failed")
            print(f"cleanup: failed: {error}", file=sys.stderr)
            return 1
    hours = args.older_than_hours
    if report.dry_run:
        line = (
            f"cleanup (dry run): would remove {report.unattached} uploads unattached for {hours} h and "
            f"{report.deleted} files of deleted messages or rooms ({report.freed} bytes), "
            f"and give back {report.settled} files held by failed sends"
        )
    else:
        line = (
            f"cleanup: removed {report.unattached} uploads unattached for {hours} h and {report.deleted} files "
            f"of deleted messages or rooms ({report.freed} bytes), gave back {report.settled} files held by "
            "failed sends"
        )
    print(line)  # the run's one summary line (stdout); logs and failures go to stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
