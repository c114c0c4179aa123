"""Direct messages: the one room of a set of people, found or created, with fixed participants.

A DM's `name_key` is its key (`key_of`): the unique index on it keeps one DM per set of
people however many requests race to open it, and no room name can spell one.
"""

from bson import ObjectId
from mongoengine import NotUniqueError

from model.membership import Role
from model.message_log import open_counter
from model.room import DM, Room
from model.user import User
from services import notify, rooms
from services.rooms import RoomView
from utils.errors import NotFound, ValidationFailed
from utils.timefmt import utcnow

# Besides the caller: a DM of ten people at most, beyond that it is a room.
MAX_OTHERS = 9
# A control character: room names are trimmed of it and refuse it inside (`utils.schemas.Name`), so no
# room name is a DM's key.
KEY_PREFIX = "\x1f"


def key_of(user_ids: list[ObjectId]) -> str:
    """The key of the DM of these people, whatever their order: their sorted ids after KEY_PREFIX."""
    return KEY_PREFIX + ",".join(sorted(str(user_id) for user_id in user_ids))


def do_open_dm(user: User, user_ids: list[ObjectId]) -> tuple[RoomView, bool]:
    """Return (the DM of the caller and these users, whether it is new); the others hear of a new one (`room_added`)."""
    others = _others(user, user_ids)
    room, created = _find_or_create(user, key_of([user.id, *(other.id for other in others)]))
    # Every request makes sure of every membership (an idempotent upsert each): one that lost the
    # race to create the room never answers before they exist, and a creator that died midway is completed.
    for participant in (user, *others):
        rooms.add_member(room.id, participant.id, Role.MEMBER)
    if created:
        for other in others:
            notify.notify_room_added(other.id, rooms.describe_one(other, room))
    return rooms.describe_one(user, room), created


def _others(user: User, user_ids: list[ObjectId]) -> list[User]:
    """The other participants: the users named, each once, the caller left out; 1 to MAX_OTHERS, all existing."""
    wanted = list(dict.fromkeys(user_id for user_id in user_ids if user_id != user.id))
    if not wanted:
        raise ValidationFailed("a direct message needs another user", {"userIds": ["Name at least one other user."]})
    if len(wanted) > MAX_OTHERS:
        reason = f"At most {MAX_OTHERS} other users."
        raise ValidationFailed("too many people for a direct message", {"userIds": [reason]})
    by_id = {other.id: other for other in User.objects(id__in=wanted)}
    for user_id in wanted:
        if user_id not in by_id:
            raise NotFound.user(user_id)
    return [by_id[user_id] for user_id in wanted]


def _find_or_create(user: User, key: str) -> tuple[Room, bool]:
    """Insert the DM of this key, or load the one that exists; (room, whether this call inserted it)."""
    room = Room(name=None, name_key=key, kind=DM, private=True, created_by=user.id, created_at=utcnow())
    try:
        room.save(force_insert=True)
    except NotUniqueError:  # it exists, or a concurrent request inserted it first
        return Room.objects(name_key=key).get(), False
    open_counter(room.id)
    return room, True
