"""Schemas for reactions: the emoji of a path or of a `react` event."""

import re
import unicodedata

from marshmallow import ValidationError, fields, validate

from utils.schemas import ObjectIdString, StrictBool, StrictSchema, visible

# Format characters that belong inside an emoji, which `visible` lets through there only: the
# zero-width joiner (U+200D) between two pictographs, which makes one emoji of them (family, rainbow
# flag, astronaut), and the tag characters (U+E0020 to U+E007F) that follow a black flag (U+1F3F4)
# in a subdivision flag (Scotland's, Wales'). Anywhere else they hide, as every other control,
# zero-width or bidi character does.
_EMOJI_FORMAT = re.compile("(?<=(.))\u200d(?=(.))|(?<=\U0001f3f4)[\U000e0020-\U000e007e]+\U000e007f", re.S)
_SKIN_TONES = ("\U0001f3fb", "\U0001f3ff")
# White space cannot be told apart; `/` cannot be named in the path; U+FFFD is what bytes that are
# not UTF-8 become in a URL.
_REFUSED = "/\ufffd"


def _pictograph(char):
    return unicodedata.category(char) == "So" or char == "\ufe0f" or _SKIN_TONES[0] <= char <= _SKIN_TONES[1]


def _emoji_format_dropped(match):
    """Drop a format character that belongs to its emoji: `visible` judges what is left."""
    if match[0] == "\u200d" and not (_pictograph(match[1]) and _pictograph(match[2])):
        return match[0]
    return ""


def _emoji(value):
    if any(char.isspace() or char in _REFUSED for char in value):
        raise ValidationError("Must not contain white space, `/` or bytes that are not UTF-8.")
    visible()(_EMOJI_FORMAT.sub(_emoji_format_dropped, value))


def emoji_field(**kwargs):
    """An emoji or a `:shortcode:`: 1 to 64 characters, no white space, nothing hidden outside an emoji sequence."""
    return fields.String(required=True, validate=[validate.Length(min=1, max=64), _emoji], **kwargs)


class EmojiPath(StrictSchema):
    """The `<emoji>` of `/api/messages/<id>/reactions/<emoji>`, URL-decoded."""

    emoji = emoji_field()


class ReactEvent(StrictSchema):
    message_id = ObjectIdString(data_key="messageId", required=True)
    emoji = emoji_field()
    add = StrictBool(required=True)
