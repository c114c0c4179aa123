from flask import Blueprint

from controller import members, rooms

bp = Blueprint("rooms", __name__)
bp.add_url_rule("/rooms", view_func=rooms.list_rooms, methods=["GET"])
bp.add_url_rule("/rooms", view_func=rooms.create_room, methods=["POST"])
bp.add_url_rule("/rooms/<room_id>", view_func=rooms.get_room, methods=["GET"])
bp.add_url_rule("/rooms/<room_id>", view_func=rooms.update_room, methods=["PATCH"])
bp.add_url_rule("/rooms/<room_id>", view_func=rooms.delete_room, methods=["DELETE"])
bp.add_url_rule("/rooms/<room_id>/join", view_func=rooms.join_room, methods=["POST"])
bp.add_url_rule("/rooms/<room_id>/leave", view_func=rooms.leave_room, methods=["POST"])
bp.add_url_rule("/rooms/<room_id>/members", view_func=members.list_members, methods=["GET"])
bp.add_url_rule("/rooms/<room_id>/members/<user_id>", view_func=members.set_member, methods=["PUT"])
bp.add_url_rule("/rooms/<room_id>/members/<user_id>", view_func=members.remove_member, methods=["DELETE"])
