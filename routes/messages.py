from flask import Blueprint

from controller import messages

bp = Blueprint("messages", __name__)
bp.add_url_rule("/messages", view_func=messages.history, methods=["GET"])
bp.add_url_rule("/send", view_func=messages.send, methods=["POST"])
bp.add_url_rule("/messages/<message_id>", view_func=messages.edit, methods=["PATCH"])
bp.add_url_rule("/messages/<message_id>", view_func=messages.delete, methods=["DELETE"])
