"""Reactions: each user's emoji on a message, at most MAX_EMOJI different emoji a message.

A message's `reactions` list one entry `{emoji, user_ids}` per emoji, in the order first used,
never an empty one. Each change is one update planned from the message as last read, and
guarded by what that plan assumed: add the user to an emoji's entry; append a new entry while
there is room for one; take the user out of an entry others share; take out the entry the user
was alone in. An update whose guard no longer holds (another request changed the reactions
first) changes nothing; the message is read again and the change planned again. So two users
reacting at once both count, racing new emoji never make a 21st, and an update that happens is
the change, returned with the message after it: nothing is read twice to tell.

Entries are named with a filtered positional path (`reactions.$[r]`): SecantusDB refuses the
positional `$` in findAndModify, the command that returns the message after the change.
"""

from functools import partial
from typing import NamedTuple

from bson import ObjectId

from model.message import Message, Reaction
from model.user import User
from model.writes import update_one_by_id
from services import messages, notify, rooms
from services.ratelimit import check_rate
from utils.errors import Conflict, NotFound, ValidationFailed

MAX_EMOJI = 20
# A failed attempt is another request's change to the same reactions: ten in a row is a storm.
ATTEMPTS = 10


class Step(NamedTuple):
    """One guarded update: the condition the plan assumed, the change, the filter naming `$[r]`."""

    guard: dict
    update: dict
    array_filters: list | None = None


def do_react(user: User, message_id: str, emoji: str, add: bool) -> Message:
    """Add or remove the caller's `emoji` on a message of a room they may post in.

    The room gets `message_updated` when the reactions changed; a repeated add, or the removal
    of a reaction that is not there, returns the message unchanged and broadcasts nothing.
    """
    check_rate(user, "reaction")
    message, room, role = messages.readable_message(user, message_id)
    rooms.check_may_post(user, room, role)
    if message.deleted:
        raise NotFound.message(message_id)
    plan = _adding if add else _removing
    for _ in range(ATTEMPTS):
        step = plan(message, user.id, emoji)
        if step is None:
            return message
        guarded = {"deleted": False, "__raw__": step.guard}
        write = partial(
            update_one_by_id,
            Message,
            message.id,
            guarded,
            array_filters=step.array_filters,
            __raw__={**step.update, "$inc": {"v": 1}},
        )
        changed = notify.notify_message_updated(message.id, write)
        if changed is not None:
            return changed
        message = messages.live_message(message.id)
    raise Conflict("the message's reactions kept changing; try again")


def _adding(message: Message, user_id: ObjectId, emoji: str) -> Step | None:
    """The update that adds the user's `emoji`, or None when they reacted with it already."""
    entry = _entry(message, emoji)
    if entry is None:
        if len(message.reactions) >= MAX_EMOJI:
            reason = f"A message has at most {MAX_EMOJI} different emoji."
            raise ValidationFailed(reason, {"emoji": [reason]})
        # Unless another request added this emoji, or the last one there is room for, first.
        guard = {"reactions.emoji": {"$ne": emoji}, f"reactions.{MAX_EMOJI - 1}": {"$exists": False}}
        return Step(guard, {"$push": {"reactions": {"emoji": emoji, "user_ids": [user_id]}}})
    if user_id in entry.user_ids:
        return None
    # Unless the entry went (its last user left) meanwhile.
    guard = {"reactions": {"$elemMatch": {"emoji": emoji, "user_ids": {"$ne": user_id}}}}
    return Step(guard, {"$addToSet": {"reactions.$[r].user_ids": user_id}}, [{"r.emoji": emoji}])


def _removing(message: Message, user_id: ObjectId, emoji: str) -> Step | None:
    """The update that removes the user's `emoji`, or None when they had not reacted with it."""
    entry = _entry(message, emoji)
    if entry is None or user_id not in entry.user_ids:
        return None
    if entry.user_ids == [user_id]:
        # The last reaction takes its entry along, unless someone else reacted with it meanwhile.
        alone = {"emoji": emoji, "user_ids": [user_id]}
        return Step({"reactions": {"$elemMatch": alone}}, {"$pull": {"reactions": alone}})
    # The others stay, unless they all left meanwhile: an entry is never left empty.
    shared = {"emoji": emoji, "user_ids": user_id, "user_ids.1": {"$exists": True}}
    return Step(
        {"reactions": {"$elemMatch": shared}}, {"$pull": {"reactions.$[r].user_ids": user_id}}, [{"r.emoji": emoji}]
    )


def _entry(message: Message, emoji: str) -> Reaction | None:
    return next((reaction for reaction in message.reactions if reaction.emoji == emoji), None)
