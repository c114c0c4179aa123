"""Room members: listing with presence, roles, removal."""

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from model.membership import Membership, Role
from model.room import Ref
from model.room_sanction import RoomSanction
from model.user import User
from services import live, notify, presence, read_state, rooms, sanctions, users
from services.permissions import check_can_add, check_can_remove, check_can_set_role, check_not_dm
from utils.errors import NotFound
from utils.timefmt import utcnow


@dataclass
class MemberView:
    """A member as the room shows them: the user, their role, when they joined, whether they are online."""

    user: User
    role: str
    joined_at: datetime
    online: bool


def add_to_general(user: User) -> None:
    """Make a new user a member of `general`."""
    rooms.add_member(rooms.general_id(), user.id, Role.MEMBER)


def list_members(user: User, ref: Ref) -> list[MemberView]:
    """Return the members of a room the caller may see, each with whether they are online."""
    room, _ = rooms.access(user, ref)
    memberships = list(Membership.objects(room=room.id).order_by("joined_at"))
    by_id = {u.id: u for u in User.objects(id__in=[m.user for m in memberships])}
    online = presence.online_users(str(room.id))
    return [
        MemberView(by_id[m.user], m.role, m.joined_at, str(m.user) in online) for m in memberships if m.user in by_id
    ]


def do_set_member_role(user: User, ref: Ref, target_id: str | ObjectId, new_role: Role) -> MemberView:
    """Add a member or change a member's role, as the role table allows; readonly is remembered beyond membership.

    Someone added by another user hears of it on all their sockets (`room_added`).
    """
    room, role = rooms.access(user, ref)
    check_not_dm(room)
    target = users.get_user(target_id)
    target_role = Membership.role_of(room.id, target.id)
    check_can_set_role(user, role, target_role, new_role)
    if target_role is None:
        check_can_add(RoomSanction.of(room.id, target.id))
    # Before the membership: a leave and rejoin in between must already find a new readonly role.
    sanctions.do_remember_role(user, room.id, target.id, new_role)
    now = utcnow()
    # The membership as it was: None when this request added it (of two concurrent adds, one).
    joined = {"set_on_insert__joined_at": now, "set_on_insert__joined_seq": read_state.join_position(room.id)}
    membership = Membership.objects(room=room.id, user=target.id)
    before = membership.modify(upsert=True, new=False, set__role=new_role, **joined)
    if before is None and not rooms.standing_among({room.id}):
        # Deleted meanwhile: the deletion sweeps memberships before and after the room, so one added after its
        # last sweep is this request's to take back (as a join's, `rooms._admit`).
        membership.delete()
        raise NotFound.room(ref)
    live.revoke_grants(room.id, target.id)
    if before is None and target.id != user.id:
        notify.notify_room_added(target.id, rooms.describe_one(target, room))
    joined_at = before.joined_at if before else now
    return MemberView(target, new_role, joined_at, str(target.id) in presence.online_users(str(room.id)))


def do_remove_member(user: User, ref: Ref, target_id: str | ObjectId) -> None:
    """Remove a member; their sockets stop receiving the room at once."""
    room, role = rooms.access(user, ref)
    check_not_dm(room)
    target = users.get_user(target_id)
    if target.id == user.id:
        return rooms.do_leave_room(user, ref)
    check_can_remove(user, role, Membership.role_of(room.id, target.id))
    Membership.objects(room=room.id, user=target.id).delete()
    live.evict(room.id, target.id)
