"""The ack contract: every event answers `{"ok": true, ...}` or `{"ok": false, "error": {...}}`."""

import logging
from functools import wraps

from services import presence
from utils.errors import AppError, InternalError, Unauthorized
from utils.extensions import socketio
from utils.outage import log_failure
from utils.schemas import load

log = logging.getLogger("chat.socket")
_NOT_SIGNED_IN = "connection is not authenticated"  # the answer to an event from a socket not (or no longer) signed in


def socket_event(schema):
    """Validate the payload with `schema`, call the handler with (sid, user, data), turn failures into error acks."""

    def decorate(handler):
        @wraps(handler)
        def wrapper(sid, *args):
            user_id, room = None, None
            try:
                entry = presence.entry(sid)
                if entry is None:
                    raise Unauthorized(_NOT_SIGNED_IN)
                if entry.expired():
                    socketio.start_background_task(_disconnect_after_ack, sid)
                    raise Unauthorized("token expired: connect again with a fresh access token")
                user_id = entry.user_id
                data = load(schema, args[0] if args else {})
                room = data.get("room")
                result = {"ok": True, **handler(sid, entry.user, data)}
                outcome = "ok"
            except AppError as error:
                result, outcome = {"ok": False, **error.to_dict()}, error.code
            except Exception:
                if user_id is not None and presence.entry(sid) is None:
                    # Its socket left the namespace while it ran (a client that sends and leaves in one write): what
                    # failed was the socket's room or presence, gone with it. A connection still open gets the ack an
                    # event from a connection not signed in gets.
                    outcome = "left"
                    error = Unauthorized(_NOT_SIGNED_IN)
                else:
                    log_failure(log, "socket event %s failed", handler.__name__)
                    outcome, error = "internal_error", InternalError()
                result = {"ok": False, **error.to_dict()}
            log.info(
                "socket %s user=%s room=%s outcome=%s",
                handler.__name__,
                user_id,
                room,
                outcome,
                extra={"event": handler.__name__, "user": user_id, "room": room, "outcome": outcome},
            )
            return result

        return wrapper

    return decorate


def _disconnect_after_ack(sid):
    socketio.sleep(0.5)  # the error ack leaves first
    socketio.server.disconnect(sid, namespace="/", ignore_queue=True)
