"""Room bans: list, ban, unban."""

from flask import g

from middleware.auth import auth_required
from services import sanctions
from utils.api import endpoint
from utils.schemas.bans import BanListSchema, BanSchema


@auth_required
@endpoint(response=BanListSchema(), errors=(403, 404))
def list_bans(room_id):
    """The room's bans, oldest first (owner, moderators, admins)."""
    return {"bans": sanctions.list_bans(g.user, room_id)}


@auth_required
@endpoint(response=BanSchema(), errors=(403, 404))
def ban(room_id, user_id):
    """Ban a user: their membership ends and their sockets leave the room at once."""
    return sanctions.do_ban(g.user, room_id, user_id)


@auth_required
@endpoint(status=204, errors=(403, 404))
def unban(room_id, user_id):
    """Lift a ban; the user may join or be added again."""
    sanctions.do_unban(g.user, room_id, user_id)
