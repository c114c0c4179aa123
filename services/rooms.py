"""Rooms: lookup with visibility, listing, create, update, delete, join, leave."""

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from bson import ObjectId
from mongoengine import NotUniqueError, QuerySet
from pymongo.errors import BulkWriteError, DuplicateKeyError

from model.archived_message import ArchivedMessage
from model.batches import find_in, in_chunks
from model.membership import POSTERS, Membership, Role
from model.message import Message
from model.message_log import DUPLICATE_KEY, delete_counter, open_counter, top_positions
from model.pin import Pin
from model.room import BY_KIND, DM, GENERAL, ROOM, Ref, Room
from model.room_sanction import RoomSanction, Sanction
from model.user import User
from services import files, live, notify, read_state
from services.permissions import (
    check_can_manage_room,
    check_can_post,
    check_can_read,
    check_not_banned,
    check_not_dm,
    check_participant,
    is_admin,
)
from utils.errors import Conflict, Forbidden, NotFound
from utils.gathered import Gathered
from utils.ids import get_by_id, parse_id
from utils.timefmt import utcnow


@dataclass
class RoomView:
    """A room as one caller sees it: the stored fields plus its member count and the caller's role."""

    id: ObjectId
    name: str | None
    description: str
    private: bool
    created_by: ObjectId | None
    created_at: datetime
    member_count: int
    my_role: str | None
    kind: str
    # The caller's read state (`services/read_state.py`); nothing unread for a non-member.
    last_message_at: datetime | None = None
    unread_count: int = 0
    mention_count: int = 0
    last_read_message_id: ObjectId | None = None


def ensure_general_room() -> None:
    """Create the public `general` room unless it exists; safe when many processes start at once."""
    # Another process may win the race; the unique index keeps one room.
    with suppress(NotUniqueError, DuplicateKeyError):
        Room.objects(name_key=GENERAL).update_one(
            upsert=True,
            set_on_insert__name=GENERAL,
            set_on_insert__description="The room everyone is in",
            set_on_insert__private=False,
            set_on_insert__created_by=None,
            set_on_insert__created_at=utcnow(),
        )


def find(ref: Ref) -> Room | None:
    """Return the room named by id or name (None means `general`), or None; a DM has no name, only its id."""
    ref = GENERAL if ref is None else ref
    room = get_by_id(Room, ref)
    if room is None and isinstance(ref, str):  # an id (a room deleted meanwhile) is no name
        room = Room.objects(name_key=ref.lower(), kind__ne=DM).first()
    if room is not None:
        _know_kind(room.id, room.kind)
    return room


@cache
def general_id() -> ObjectId:
    """The id of `general` (created at start-up, never deleted or renamed), looked up once per process."""
    return find(GENERAL).id


def kind_of(room_id: ObjectId) -> str:
    """Whether a room is a `room` or a `dm`: read once per process, or known from a lookup of the room (a socket's
    join), since a room never changes kind."""
    if room_id not in _kinds:
        room = Room.objects(id=room_id).only("kind").first()
        _know_kind(room_id, room.kind if room is not None else ROOM)
    return _kinds[room_id]


_kinds: dict[ObjectId, str] = {}
_KINDS_KEPT = 65536


def _know_kind(room_id: ObjectId, kind: str) -> None:
    if len(_kinds) >= _KINDS_KEPT:
        _kinds.clear()
    _kinds[room_id] = kind


def general_channel() -> str:
    """The Socket.IO channel of `general`."""
    return str(general_id())


def postable(user: User, ref: Ref) -> ObjectId:
    """Return the id of a room the user may post in.

    The hot path of every send: a room named by id (or omitted) whose membership says
    owner, moderator or member costs one indexed read. Memberships go before their room
    does, so one that exists names a live room. Anything else (names, admins, errors) takes
    the full lookup for the right answer.
    """
    room_id = id_of(ref)
    if room_id is not None and is_poster(user, room_id):
        return room_id
    return check_postable(user, ref)


def id_of(ref: Ref) -> ObjectId | None:
    """The room id a reference gives without a lookup (None means `general`), or None for a name."""
    return general_id() if ref is None else parse_id(ref)


def check_postable(user: User, ref: Ref) -> ObjectId:
    """The full lookup behind `postable`: the room by id or name, the caller's role, the role table."""
    room, role = access(user, ref)
    check_may_post(user, room, role)
    return room.id


def check_may_post(user: User, room: Room, role: Role | None) -> None:
    """The role table's rule for posting (and reacting) in a room the caller may read."""
    if role is None:
        check_not_banned(RoomSanction.of(room.id, user.id))
        check_participant(room, role)
    check_can_post(user, role)


def is_poster(user: User, room_id: ObjectId) -> bool:
    """Whether the user's membership of the room is one that posts (one indexed read)."""
    return Membership.role_of(room_id, user.id) in POSTERS


def access(user: User, ref: Ref) -> tuple[Room, Role | None]:
    """Return (room, caller's role) for a room the caller may see; others are 404 naming `ref`."""
    room = find(ref)
    if room is None:
        raise NotFound.room(ref)
    role = Membership.role_of(room.id, user.id)
    check_can_read(user, room, role, ref)
    return room, role


def describe(user: User, rooms: list[Room]) -> list[RoomView]:
    """Return a RoomView per room: member counts, the caller's roles and last positions in three queries, read state
    in a few per room."""
    room_ids = [room.id for room in rooms]
    counts = {
        row["_id"]: row["n"]
        for row in Membership.objects(room__in=room_ids).aggregate([{"$group": {"_id": "$room", "n": {"$sum": 1}}}])
    }
    mine = Membership.objects(room__in=room_ids, user=user.id).only("room", "role", *read_state.MARKER_FIELDS)
    memberships = {m.room: m for m in mine}
    tops = top_positions(room_ids)
    return [
        RoomView(
            room.id,
            room.name,
            room.description,
            room.private,
            room.created_by,
            room.created_at,
            counts.get(room.id, 0),
            memberships[room.id].role if room.id in memberships else None,
            room.kind,
            **read_state.summary(user.id, room, memberships.get(room.id), tops[room.id]),
        )
        for room in rooms
    ]


def describe_one(user: User, room: Room) -> RoomView:
    """Return the RoomView of one room."""
    return describe(user, [room])[0]


def list_rooms(user: User, limit: int, cursor: ObjectId | None, kind: str | None) -> tuple[list[RoomView], str | None]:
    """Return (rooms, nextCursor), newest first: public rooms, the caller's private ones and DMs, or one `kind`."""
    query = listed(user, kind)
    if cursor:
        query = query.filter(id__lt=cursor)
    rooms = list(query.limit(limit + 1))
    next_cursor = str(rooms[limit - 1].id) if len(rooms) > limit else None
    return describe(user, rooms[:limit]), next_cursor


def listed(user: User, kind: str | None) -> QuerySet:
    """The query of `list_rooms`, newest first: admins list every room, but DMs only to their participants."""
    member_of = {"_id": {"$in": Membership.objects(user=user.id).distinct("room")}}
    if kind == DM:  # from the (kind, id) index: the caller's DMs only, not every room they are in
        return Room.objects(__raw__={"kind": DM, **member_of}).hint(BY_KIND).order_by("-id")
    visible = {} if is_admin(user) else {"$or": [{"private": False}, member_of]}
    if kind == ROOM:
        where = {"kind": {"$ne": DM}, **visible}  # `general` predates `kind` and has none stored
    elif is_admin(user):
        where = {"$or": [{"kind": {"$ne": DM}}, member_of]}
    else:
        where = visible  # a DM is private: the caller's own are among their memberships
    return Room.objects(__raw__=where).order_by("-id")


def do_create_room(user: User, name: str, description: str, private: bool) -> RoomView:
    """Create a room with the caller as its owner; 409 when the name is taken."""
    room = Room(
        name=name,
        name_key=name.lower(),
        description=description,
        private=private,
        created_by=user.id,
        created_at=utcnow(),
    )
    try:
        room.save(force_insert=True)
    except NotUniqueError:
        raise Conflict.taken("name", name, "room name") from None
    open_counter(room.id)
    Membership(room=room.id, user=user.id, role=Role.OWNER, joined_at=room.created_at).save(force_insert=True)
    return describe_one(user, room)


def do_update_room(user: User, ref: Ref, changes: dict[str, str]) -> RoomView:
    """Rename or re-describe a room (owner, admins)."""
    room, role = access(user, ref)
    check_not_dm(room)
    check_can_manage_room(user, role)
    if "name" in changes and room.name_key == GENERAL and changes["name"].lower() != GENERAL:
        raise Forbidden("the general room cannot be renamed")
    updates = {f"set__{field}": value for field, value in changes.items()}
    if "name" in changes:
        updates["set__name_key"] = changes["name"].lower()
    if updates:
        try:
            room = Room.objects(id=room.id).modify(new=True, **updates) or room
        except NotUniqueError:
            raise Conflict.taken("name", changes["name"], "room name") from None
    return describe_one(user, room)


def do_delete_room(user: User, ref: Ref) -> None:
    """Delete a room with its memberships and messages (owner, admins); `general` stays."""
    room, role = access(user, ref)
    check_not_dm(room)
    check_can_manage_room(user, role)
    if room.name_key == GENERAL:
        raise Forbidden("the general room cannot be deleted")
    # Memberships first: the send path trusts a membership to name a live room. Again once the room is gone: a
    # join that read the room before may have added one since (a join after that finds the room gone, `_admit`).
    Membership.objects(room=room.id).delete()
    room.delete()
    Membership.objects(room=room.id).delete()
    delete_counter(room.id)
    RoomSanction.objects(room=room.id).delete()
    Message.objects(room=room.id).delete()
    Pin.of_room(room.id).delete()
    ArchivedMessage.objects(room=room.id).delete()
    files.do_delete_room_files(room.id)
    notify.notify_room_deleted(room.id)
    live.evict(room.id)


def rooms_and_roles(keys: list[tuple[ObjectId, ObjectId]]) -> tuple[dict, dict]:
    """The rooms and the memberships of `[(room id, user id)]` (joins arriving together, a process's sockets):
    `({room id: room}, {(room id, user id): role})`, in one query a chunk of rooms (`in_chunks`) and, for the
    memberships, queries by room or by user, whichever are fewer (a big room's members rejoining after a restart
    are one room; a user's tabs rejoining their rooms are one user), a chunk of the other side each."""
    wanted = in_chunks({room_id for room_id, _ in keys})
    rooms = {room.id: room for chunk in wanted for room in Room.objects(id__in=chunk)}
    by_room, by_user = {}, {}
    for room_id, user_id in keys:
        by_room.setdefault(room_id, set()).add(user_id)
        by_user.setdefault(user_id, set()).add(room_id)
    # One side in `$in`, the other an equality: the (room, user) and (user, room) indexes answer it, SecantusDB's
    # too, which scans the collection for a query with both in `$in`.
    one, other, groups = ("room", "user", by_room) if len(by_room) < len(by_user) else ("user", "room", by_user)
    queries = [{one: key, other: {"$in": chunk}} for key, values in groups.items() for chunk in in_chunks(values)]
    roles = {}
    for query in queries:
        for found in Membership._get_collection().find(query, {"room": 1, "user": 1, "role": 1, "_id": 0}):
            roles[found["room"], found["user"]] = Role(found["role"])
    return rooms, roles


join_reads = Gathered(rooms_and_roles)


def _access_to_join(user: User, ref: Ref) -> tuple[Room, Role | None]:
    """`access`, with the room and membership read together with those of the joins of the same moment (a storm
    of reconnects); a room named by its name, or an id that names no room (it may be a name), as `access`."""
    room_id = id_of(ref)
    if room_id is None:
        return access(user, ref)
    rooms, roles = join_reads((room_id, user.id))
    room = rooms.get(room_id)
    if room is None:
        return access(user, ref)
    _know_kind(room.id, room.kind)
    role = roles.get((room.id, user.id))
    check_can_read(user, room, role, ref)
    return room, role


def do_join_room(user: User, ref: Ref) -> tuple[Room, Role]:
    """Make the caller a member of a public room (private ones: members and admins), unless banned; readonly stays.
    Return (room, the caller's role in it)."""
    room, role = _access_to_join(user, ref)
    if role is None:
        if room.private and not is_admin(user):
            raise NotFound.room(ref)
        check_participant(room, role)
        key = (room.id, user.id)
        role, sanctions = admit(key)[key]
        check_not_banned(sanctions)
        if role is None:
            raise NotFound.room(ref)  # deleted meanwhile
    return room, role


def _admit(keys: list[tuple[ObjectId, ObjectId]]) -> dict[tuple[ObjectId, ObjectId], tuple[Role | None, set[Sanction]]]:
    """Make members of the joins arriving together that need a membership, `[(room id, user id)]` (a first join of
    a room by everyone at once, or one user's tabs joining it together): `{(room id, user id): (role, sanctions)}`,
    refused when the sanctions hold a ban.

    For each, as one join alone: its sanctions are read (a readonly role outlives the membership: leaving and
    rejoining does not lift it), the membership is added unless banned, then the sanctions and the room are read
    again. A ban is stored before it deletes the membership, and a room's deletion deletes its memberships
    before and after the room: so a ban or a deletion the second reads miss deletes the membership after the
    insert, and one they find may have deleted it before, so the membership is deleted here and the join
    refused (no role: the room is gone). Each step is one command for all of them."""
    pairs = set(keys)
    before = RoomSanction.among(pairs)
    roles = {}
    for pair in pairs:
        if Sanction.BAN not in before[pair]:
            roles[pair] = Role.READONLY if Sanction.READONLY in before[pair] else Role.MEMBER
    after = {}
    if roles:
        _add_members(roles)
        after = RoomSanction.among(set(roles))
        standing = standing_among({room_id for room_id, _ in roles})
        for pair in list(roles):
            if Sanction.BAN in after[pair] or pair[0] not in standing:
                Membership.objects(room=pair[0], user=pair[1]).delete()
                live.evict(*pair)
                if pair[0] not in standing:
                    del roles[pair]
    return {pair: (roles.get(pair), after.get(pair, before[pair])) for pair in pairs}


admit = Gathered(_admit)


def standing_among(room_ids: set[ObjectId]) -> set[ObjectId]:
    """Those of the rooms that still exist, in one read a chunk of them (a membership written as its room was deleted
    is taken back by whoever wrote it and finds the room gone)."""
    return {found["_id"] for found in find_in(Room._get_collection(), "_id", room_ids, {"_id": 1})}


def _add_members(roles: dict[tuple[ObjectId, ObjectId], Role]) -> None:
    """`add_member` for each `(room id, user id)`, in one write: inserts, which the unique `(room, user)` index
    refuses for a membership that exists (kept as it is), where an upsert cost SecantusDB twice an insert's time
    (530 against 250 µs a membership, in bulks of 100)."""
    tops, now = top_positions({room_id for room_id, _ in roles}), utcnow()
    members = [
        {"room": room_id, "user": user_id, "role": role.value, "joined_at": now, "joined_seq": tops[room_id]}
        for (room_id, user_id), role in roles.items()
    ]
    try:
        Membership._get_collection().insert_many(members, ordered=False)
    except BulkWriteError as error:  # a member already, or concurrent joins: the unique index kept one membership
        if any(failure.get("code") != DUPLICATE_KEY for failure in error.details.get("writeErrors", [])):
            raise


def add_member(room_id: ObjectId, user_id: ObjectId, role: Role) -> None:
    """Make the user a member with `role` unless already one; concurrent joins keep one membership."""
    _add_members({(room_id, user_id): role})


def do_leave_room(user: User, ref: Ref) -> None:
    """End the caller's membership; the owner and `general` cannot be left."""
    room, role = access(user, ref)
    check_not_dm(room)
    if room.name_key == GENERAL:
        raise Forbidden("everyone stays in the general room")
    if role == Role.OWNER:
        raise Forbidden("the owner cannot leave; delete the room instead")
    Membership.objects(room=room.id, user=user.id).delete()
    live.evict(room.id, user.id)
