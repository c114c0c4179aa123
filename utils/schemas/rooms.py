"""Schemas for rooms and their members."""

from marshmallow import fields, validate

from model.membership import ASSIGNABLE
from model.room import KINDS
from utils.schemas import (
    IdField,
    IsoDateTime,
    Name,
    ObjectIdString,
    StrictBool,
    StrictSchema,
    Trimmed,
    page_limit,
    visible,
)
from utils.schemas.accounts import UserSchema

# Descriptions may run over several lines; nothing else hidden.
DESCRIPTION = [validate.Length(max=500), visible(allow="\n")]


class RoomCreateSchema(StrictSchema):
    name = Name(required=True)
    description = Trimmed(load_default="", validate=DESCRIPTION)
    private = StrictBool(load_default=False)


class RoomUpdateSchema(StrictSchema):
    name = Name()
    description = Trimmed(validate=DESCRIPTION)


class RoomListQuery(StrictSchema):
    limit = page_limit()
    cursor = ObjectIdString(load_default=None)
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))


class MemberRoleSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf(sorted(ASSIGNABLE)))


class RoomSchema(StrictSchema):
    id = IdField()
    name = fields.String(allow_none=True)
    description = fields.String()
    private = fields.Boolean()
    created_by = IdField(data_key="createdBy", allow_none=True)
    created_at = IsoDateTime(data_key="createdAt")
    member_count = fields.Integer(data_key="memberCount")
    my_role = fields.String(data_key="myRole", allow_none=True)
    kind = fields.String()
    last_message_at = IsoDateTime(data_key="lastMessageAt", allow_none=True)
    unread_count = fields.Integer(data_key="unreadCount")
    mention_count = fields.Integer(data_key="mentionCount")
    last_read_message_id = IdField(data_key="lastReadMessageId", allow_none=True)


class RoomPageSchema(StrictSchema):
    rooms = fields.List(fields.Nested(RoomSchema))
    next_cursor = fields.String(data_key="nextCursor", allow_none=True)


class MemberSchema(StrictSchema):
    user = fields.Nested(UserSchema)
    role = fields.String()
    joined_at = IsoDateTime(data_key="joinedAt")
    online = fields.Boolean()


class MemberListSchema(StrictSchema):
    members = fields.List(fields.Nested(MemberSchema))
