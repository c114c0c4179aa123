"""Pins: pin and unpin a message (at most 50 a room); a room's pins, newest pin first."""

from controller import pins

RULES = [
    ("PUT", "/messages/<message_id>/pin", pins.pin),
    ("DELETE", "/messages/<message_id>/pin", pins.unpin),
    ("GET", "/rooms/<room_id>/pins", pins.list_pins),
]
