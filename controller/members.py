"""Room members: list, add or change role, remove."""

from flask import g

from middleware.auth import auth_required
from services import members
from utils.http import json_body
from utils.schemas import load
from utils.schemas.rooms import MemberListSchema, MemberRoleSchema, MemberSchema


@auth_required
def list_members(room_id):
    return MemberListSchema().dump({"members": members.list_members(room_id, g.user)})


@auth_required
def set_member(room_id, user_id):
    data = load(MemberRoleSchema(), json_body())
    return MemberSchema().dump(members.do_set_member_role(room_id, user_id, data["role"], g.user))


@auth_required
def remove_member(room_id, user_id):
    members.do_remove_member(room_id, user_id, g.user)
    return "", 204
