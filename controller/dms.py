"""Direct messages: open one."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import dms
from utils.api import endpoint
from utils.schemas.dms import DmOpenSchema
from utils.schemas.rooms import RoomSchema


@auth_required
@per_user("join")
@endpoint(body=DmOpenSchema(), response=RoomSchema(), status=201, also=(200,), errors=(404, 429))
def open_dm(body):
    """The DM of the caller and these users: created (201) or the existing one (200)."""
    room, created = dms.do_open_dm(g.user, body["user_ids"])
    return room, 201 if created else 200
