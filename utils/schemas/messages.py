"""Schemas for messages: history queries, sends, edits, and the message object."""

from marshmallow import ValidationError, fields, validate, validates_schema

from utils.schemas import (
    IdField,
    IsoDateTime,
    LegacyFields,
    ObjectIdString,
    StrictSchema,
    Trimmed,
    page_limit,
    room_ref,
)
from utils.schemas.files import FileSchema

BODY = validate.Length(min=1, max=4000)


def _distinct(ids):
    if len(set(ids)) != len(ids):
        raise ValidationError("Each file once.")


class HistoryQuery(StrictSchema):
    room = room_ref()
    limit = page_limit()
    before = ObjectIdString(load_default=None)
    after = ObjectIdString(load_default=None)
    archived = fields.Boolean(load_default=False)
    thread = ObjectIdString(load_default=None, metadata={"description": "A thread root's id: page its replies."})

    @validates_schema
    def one_cursor(self, data, **kwargs):
        if data.get("before") and data.get("after"):
            raise ValidationError("Give before or after, not both.", "before")


class SendSchema(LegacyFields, StrictSchema):
    room = room_ref()
    # Empty (or left out) only in a message that carries files.
    message_body = Trimmed(data_key="messageBody", load_default="", validate=validate.Length(max=BODY.max))
    client_id = fields.String(
        data_key="clientId", load_default=None, allow_none=True, validate=validate.Length(min=1, max=128)
    )
    reply_to = ObjectIdString(
        data_key="replyTo", load_default=None, allow_none=True, metadata={"description": "Answer in this thread."}
    )
    attachments = fields.List(
        ObjectIdString(),
        load_default=list,
        validate=[validate.Length(min=1, max=10), _distinct],
        metadata={"description": "Ids of files the sender uploaded to this room (POST /api/files), 1 to 10"},
    )

    @validates_schema
    def body_or_files(self, data, **kwargs):
        if not data.get("message_body") and not data.get("attachments"):
            raise ValidationError(f"Length must be between 1 and {BODY.max} (or send attachments).", "messageBody")


class EditSchema(StrictSchema):
    message_body = Trimmed(data_key="messageBody", required=True, validate=BODY)


class ReactionSchema(StrictSchema):
    emoji = fields.String()
    count = fields.Function(lambda reaction: len(reaction.user_ids))
    user_ids = fields.List(IdField(), data_key="userIds")


class MessageSchema(StrictSchema):
    id = IdField()
    room = IdField()
    user_id = IdField(data_key="userId")
    user_name = fields.String(data_key="userName")
    message_body = fields.String(data_key="messageBody")
    time_stamp = IsoDateTime(data_key="timeStamp")
    client_id = fields.String(data_key="clientId", allow_none=True)
    edited_at = IsoDateTime(data_key="editedAt", allow_none=True)
    deleted = fields.Boolean()
    archived = fields.Boolean()
    reply_to = IdField(data_key="replyTo", allow_none=True)
    reply_count = fields.Integer(data_key="replyCount")
    last_reply_at = IsoDateTime(data_key="lastReplyAt", allow_none=True)
    reactions = fields.List(fields.Nested(ReactionSchema))
    mentions = fields.List(IdField())
    mentions_room = fields.Boolean(data_key="mentionsRoom")
    pinned = fields.Boolean()
    attachments = fields.List(fields.Nested(FileSchema))


class MessagePageSchema(StrictSchema):
    messages = fields.List(fields.Nested(MessageSchema))
    next_cursor = fields.String(data_key="nextCursor", allow_none=True)


class MessageAckSchema(StrictSchema):
    message = fields.Nested(MessageSchema)
