"""Rooms: list, create, read, rename, delete; join and leave; read markers; members and their roles; bans."""

from controller import bans, members, read_state, rooms

RULES = [
    ("GET", "/rooms", rooms.list_rooms),
    ("POST", "/rooms", rooms.create_room),
    ("GET", "/rooms/<room_id>", rooms.get_room),
    ("PATCH", "/rooms/<room_id>", rooms.update_room),
    ("DELETE", "/rooms/<room_id>", rooms.delete_room),
    ("POST", "/rooms/<room_id>/join", rooms.join_room),
    ("POST", "/rooms/<room_id>/leave", rooms.leave_room),
    ("POST", "/rooms/<room_id>/read", read_state.mark_read),
    ("GET", "/rooms/<room_id>/members", members.list_members),
    ("PUT", "/rooms/<room_id>/members/<user_id>", members.set_member),
    ("DELETE", "/rooms/<room_id>/members/<user_id>", members.remove_member),
    ("GET", "/rooms/<room_id>/bans", bans.list_bans),
    ("PUT", "/rooms/<room_id>/bans/<user_id>", bans.ban),
    ("DELETE", "/rooms/<room_id>/bans/<user_id>", bans.unban),
]
