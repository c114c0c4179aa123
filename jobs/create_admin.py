"""Promote a user to global admin: `python -m jobs.create_admin USERNAME` (no request can do this)."""

import argparse
import sys

from jobs import build_app
from services.users import do_make_admin
from utils.errors import NotFound


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m jobs.create_admin", description=__doc__)
    parser.add_argument("username")
    args = parser.parse_args(argv)
    app = build_app()
    with app.app_context():
        try:
            user = do_make_admin(args.username)
        except NotFound as error:
            print(error.message, file=sys.stderr)
            return 1
    print(f"{user.username} is now an admin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
