"""Database connection: `init_db(app)` connects MongoEngine and creates every index."""

import logging
import re

import mongoengine
from pymongo.uri_parser import parse_uri

from model import embedded
from model.archived_message import ArchivedMessage
from model.file import File
from model.job_lease import JobLease
from model.job_run import JobRun
from model.membership import Membership, set_join_positions
from model.message import Message, drop_retired_indexes, flag_replies
from model.message_log import move_counters, number_old_messages
from model.pin import Pin, move_pin_slots
from model.revoked_token import RevokedToken
from model.room import Room
from model.room_sanction import RoomSanction
from model.user import User, fill_username_lengths

DOCUMENTS = (User, Room, Membership, RoomSanction, Message, ArchivedMessage, Pin, RevokedToken, JobLease, JobRun, File)
log = logging.getLogger(__name__)


def redact(uri):
    """Hide the password in a MongoDB URI, for logs."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)


def init_db(app, listeners=()):
    """Connect to MONGODB_URI (or start the embedded store) and make sure every index exists."""
    uri = app.config["MONGODB_URI"]
    if not uri:
        path = app.config["EMBEDDED_DB_PATH"]
        log.warning("MONGODB_URI is unset: using the embedded SecantusDB store at %s", path)
        _, uri = embedded.start_daemon(path, app.config["EMBEDDED_DB_PORT"] or None)
        app.config["MONGODB_URI"] = uri
    db_name = parse_uri(uri)["database"] or "chat"
    mongoengine.disconnect()
    mongoengine.connect(
        db=db_name,
        host=uri,
        tz_aware=True,
        serverSelectionTimeoutMS=app.config["DB_TIMEOUT_MS"],
        connectTimeoutMS=app.config["DB_TIMEOUT_MS"],
        maxPoolSize=app.config["DB_MAX_POOL_SIZE"],
        uuidRepresentation="standard",
        # An acknowledged write is in the database's journal: it survives a crash of the database.
        journal=True,
        event_listeners=list(listeners),
    )
    log.info("database: %s (database %s)", redact(uri), db_name)
    move_counters(mongoengine.get_db())
    number_old_messages(mongoengine.get_db())  # before the unique (room, seq) index is built
    fill_username_lengths(mongoengine.get_db())
    set_join_positions(mongoengine.get_db())  # after positions exist
    move_pin_slots(mongoengine.get_db())
    flag_replies(mongoengine.get_db())
    drop_retired_indexes(mongoengine.get_db())
    for document in DOCUMENTS:
        document.ensure_indexes()


def ping():
    """Return True when the database answers a ping."""
    try:
        mongoengine.get_db().client.admin.command("ping")
        return True
    except Exception:  # any driver error means "down" to the health check
        return False
