"""Rooms: list, create, read, update, delete, join, leave."""

from flask import g, request

from middleware.auth import auth_required
from services import rooms
from utils.http import json_body
from utils.schemas import load
from utils.schemas.rooms import RoomCreateSchema, RoomListQuery, RoomPageSchema, RoomSchema, RoomUpdateSchema


@auth_required
def list_rooms():
    query = load(RoomListQuery(), request.args.to_dict())
    page, next_cursor = rooms.list_rooms(g.user, query["limit"], query["cursor"])
    return RoomPageSchema().dump({"rooms": page, "next_cursor": next_cursor})


@auth_required
def create_room():
    data = load(RoomCreateSchema(), json_body())
    return RoomSchema().dump(rooms.do_create_room(g.user, **data)), 201


@auth_required
def get_room(room_id):
    room, _ = rooms.access(room_id, g.user)
    return RoomSchema().dump(rooms.describe_one(room, g.user))


@auth_required
def update_room(room_id):
    changes = load(RoomUpdateSchema(), json_body())
    return RoomSchema().dump(rooms.do_update_room(room_id, g.user, changes))


@auth_required
def delete_room(room_id):
    rooms.do_delete_room(room_id, g.user)
    return "", 204


@auth_required
def join_room(room_id):
    room = rooms.do_join_room(room_id, g.user)
    return RoomSchema().dump(rooms.describe_one(room, g.user))


@auth_required
def leave_room(room_id):
    rooms.do_leave_room(room_id, g.user)
    return "", 204
