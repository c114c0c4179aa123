"""Rooms: list, create, read, update, delete, join, leave."""

from flask import g

from middleware.auth import auth_required
from middleware.limits import per_user
from services import rooms
from utils.api import endpoint
from utils.schemas.rooms import RoomCreateSchema, RoomListQuery, RoomPageSchema, RoomSchema, RoomUpdateSchema


@auth_required
@endpoint(query=RoomListQuery(), response=RoomPageSchema())
def list_rooms(query):
    """Public rooms and the caller's private rooms and DMs, newest first; `kind` keeps one kind."""
    page, next_cursor = rooms.list_rooms(g.user, **query)
    return {"rooms": page, "next_cursor": next_cursor}


@auth_required
@per_user("room_create")
@endpoint(body=RoomCreateSchema(), response=RoomSchema(), status=201, errors=(409, 429))
def create_room(body):
    """Create a room; the caller is its owner."""
    return rooms.do_create_room(g.user, **body)


@auth_required
@endpoint(response=RoomSchema(), errors=(404,))
def get_room(room_id):
    """One room, by id or name."""
    room, _ = rooms.access(g.user, room_id)
    return rooms.describe_one(g.user, room)


@auth_required
@endpoint(body=RoomUpdateSchema(), response=RoomSchema(), errors=(403, 404, 409))
def update_room(room_id, body):
    """Rename or re-describe a room (owner, admins)."""
    return rooms.do_update_room(g.user, room_id, body)


@auth_required
@endpoint(status=204, errors=(403, 404))
def delete_room(room_id):
    """Delete a room with its members and messages (owner, admins)."""
    rooms.do_delete_room(g.user, room_id)


@auth_required
@endpoint(response=RoomSchema(), errors=(404,))
def join_room(room_id):
    """Become a member of a public room (private rooms: members only)."""
    room, _ = rooms.do_join_room(g.user, room_id)
    return rooms.describe_one(g.user, room)


@auth_required
@endpoint(status=204, errors=(403, 404))
def leave_room(room_id):
    """End the caller's membership."""
    rooms.do_leave_room(g.user, room_id)
