"""What a room holds against a user beyond a membership: bans, and the remembered readonly role."""

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from mongoengine import NotUniqueError

from model.membership import Membership, Role
from model.room import GENERAL, Ref
from model.room_sanction import RoomSanction, Sanction
from model.user import User
from services import live, rooms, users
from services.permissions import check_can_ban, check_can_manage_bans, check_not_dm
from utils.errors import Forbidden, NotFound
from utils.timefmt import utcnow


@dataclass
class BanView:
    """A ban as its room lists it: who is banned, by whom, since when."""

    user: User
    banned_by: ObjectId
    created_at: datetime


def list_bans(user: User, ref: Ref) -> list[BanView]:
    """Return a room's bans, oldest first (owner, moderators, admins)."""
    room, role = rooms.access(user, ref)
    check_can_manage_bans(user, role)
    bans = list(RoomSanction.objects(room=room.id, kind=Sanction.BAN).order_by("created_at"))
    banned = {u.id: u for u in User.objects(id__in=[ban.user for ban in bans])}
    return [BanView(banned[ban.user], ban.by, ban.created_at) for ban in bans if ban.user in banned]


def do_ban(user: User, ref: Ref, target_id: str | ObjectId) -> BanView:
    """Ban a user from a room: membership and sockets go at once; banning again answers the first ban."""
    room, role = rooms.access(user, ref)
    check_not_dm(room)
    target = users.get_user(target_id)
    if room.name_key == GENERAL:
        raise Forbidden("everyone stays in the general room; make them readonly instead")
    check_can_ban(user, role, target, Membership.role_of(room.id, target.id))
    ban = impose(user, room.id, target.id, Sanction.BAN)
    # After the ban is stored, so that a join from now on finds it.
    Membership.objects(room=room.id, user=target.id).delete()
    live.evict(room.id, target.id)
    return BanView(target, ban.by, ban.created_at)


def do_unban(user: User, ref: Ref, target_id: str | ObjectId) -> None:
    """Lift a ban: the user may join or be added again (readonly, if they were)."""
    room, role = rooms.access(user, ref)
    check_not_dm(room)
    check_can_manage_bans(user, role)
    target = users.get_user(target_id)
    if not RoomSanction.objects(room=room.id, user=target.id, kind=Sanction.BAN).delete():
        raise NotFound(f"user {target_id} is not banned from this room")


def do_remember_role(user: User, room_id: ObjectId, target_id: ObjectId, role: Role) -> None:
    """Remember a readonly role `user` gives beyond the membership, so rejoining keeps it; other roles forget it."""
    if role == Role.READONLY:
        impose(user, room_id, target_id, Sanction.READONLY)
    else:
        RoomSanction.objects(room=room_id, user=target_id, kind=Sanction.READONLY).delete()


def impose(user: User, room_id: ObjectId, target_id: ObjectId, kind: Sanction) -> RoomSanction:
    """Store a sanction `user` imposes unless the room holds it already; return the stored one (the first stays)."""
    held = RoomSanction.objects(room=room_id, user=target_id, kind=kind)
    try:
        return held.modify(upsert=True, new=True, set_on_insert__by=user.id, set_on_insert__created_at=utcnow())
    except NotUniqueError:
        # A concurrent request inserted it first; the unique index kept one.
        return held.get()
