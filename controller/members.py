"""Room members: list, add or change role, remove."""

from flask import g

from middleware.auth import auth_required
from services import members
from utils.api import endpoint
from utils.schemas.rooms import MemberListSchema, MemberRoleSchema, MemberSchema


@auth_required
@endpoint(response=MemberListSchema(), errors=(404,))
def list_members(room_id):
    """The room's members, each with their role and whether they are online."""
    return {"members": members.list_members(g.user, room_id)}


@auth_required
@endpoint(body=MemberRoleSchema(), response=MemberSchema(), errors=(403, 404))
def set_member(room_id, user_id, body):
    """Add a member or change a member's role."""
    return members.do_set_member_role(g.user, room_id, user_id, body["role"])


@auth_required
@endpoint(status=204, errors=(403, 404))
def remove_member(room_id, user_id):
    """Remove a member; their sockets leave the room at once."""
    members.do_remove_member(g.user, room_id, user_id)
