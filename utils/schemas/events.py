"""Schemas of the Socket.IO events that are not shared with REST."""

from marshmallow import fields

from utils.schemas import ObjectIdString, StrictBool, StrictSchema, page_limit, room_ref


class RoomEvent(StrictSchema):
    room = room_ref()


class TypingEvent(StrictSchema):
    room = room_ref()
    typing = StrictBool(required=True)


class SyncEvent(StrictSchema):
    room = room_ref()
    after = ObjectIdString(required=True)
    limit = page_limit()


class OnlineUserSchema(StrictSchema):
    user_id = fields.String(data_key="userId")
    user_name = fields.String(data_key="userName")
