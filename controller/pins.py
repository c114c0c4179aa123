"""Pins: pin and unpin a message; a room's pins."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import pins
from utils.api import endpoint
from utils.schemas.messages import MessageSchema
from utils.schemas.pins import PinListSchema


@auth_required
@per_user("edit")
@endpoint(response=MessageSchema(), errors=(403, 404, 409, 429))
def pin(message_id):
    """Pin a message (the room's owner, moderators, admins; DM participants); broadcasts `message_updated`."""
    return pins.do_pin(g.user, message_id)


@auth_required
@per_user("edit")
@endpoint(response=MessageSchema(), errors=(403, 404, 429))
def unpin(message_id):
    """Unpin a message (who may pin it); broadcasts `message_updated`."""
    return pins.do_unpin(g.user, message_id)


@auth_required
@per_user("read")
@endpoint(response=PinListSchema(), errors=(404, 429))
def list_pins(room_id):
    """The room's pinned messages, newest pin first."""
    return {"messages": pins.list_pins(g.user, room_id)}
