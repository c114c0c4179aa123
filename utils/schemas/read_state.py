"""Schemas of read state: moving a read marker (REST body and socket event), its answer, a message's readers."""

from marshmallow import fields

from utils.schemas import IdField, IsoDateTime, ObjectIdString, StrictSchema, room_ref


class MarkReadSchema(StrictSchema):
    message_id = ObjectIdString(required=True, data_key="messageId")


class ReadEvent(MarkReadSchema):
    room = room_ref()


class ReadStateSchema(StrictSchema):
    room = IdField()
    last_read_message_id = IdField(data_key="lastReadMessageId", allow_none=True)
    unread_count = fields.Integer(data_key="unreadCount")
    mention_count = fields.Integer(data_key="mentionCount")


class ReaderSchema(StrictSchema):
    user_id = IdField(data_key="userId")
    user_name = fields.String(data_key="userName")
    read_at = IsoDateTime(data_key="readAt")


class ReaderListSchema(StrictSchema):
    readers = fields.List(fields.Nested(ReaderSchema))
