"""Schemas of the Socket.IO events and acks that are not shared with REST."""

from marshmallow import fields

from utils.schemas import IdField, LegacyFields, ObjectIdString, StrictBool, StrictSchema, page_limit, room_ref


class RoomEvent(LegacyFields, StrictSchema):
    room = room_ref()


class TypingEvent(StrictSchema):
    room = room_ref()
    typing = StrictBool(required=True)


class SyncEvent(StrictSchema):
    room = room_ref()
    after = ObjectIdString(required=True)
    limit = page_limit()


class OnlineUserSchema(StrictSchema):
    """One online user, dumped from a (userId, userName) pair (also the original service's user shape)."""

    user_id = fields.Function(lambda pair: pair[0], data_key="userId")
    user_name = fields.Function(lambda pair: pair[1], data_key="userName")


class RoomAckSchema(StrictSchema):
    room = IdField()


class JoinAckSchema(RoomAckSchema):
    members = fields.List(fields.Nested(OnlineUserSchema))
