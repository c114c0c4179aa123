"""The contract's role table, as `check_*` functions shared by REST and Socket.IO."""

from bson import ObjectId

from model.membership import MANAGERS, MODERATED, POSTERS, Role
from model.message import MessageFields
from model.room import DM, Room
from model.room_sanction import Sanction
from model.user import User
from utils.errors import Forbidden, NotFound


def is_admin(user: User) -> bool:
    """Whether the user holds the global admin role."""
    return user.role == "admin"


def check_can_read(user: User, room: Room, role: Role | None, ref: str | ObjectId | None) -> None:
    """Public rooms are readable by everyone; private ones are invisible (404) to outsiders."""
    # The 404 repeats the caller's reference: naming the room's id would confirm a guessed name.
    if room.private and role is None and not is_admin(user):
        raise NotFound.room(ref)


def check_can_post(user: User, role: Role | None) -> None:
    """Owners, moderators, members and admins post in a room they can read; readonly members and outsiders do not."""
    if role in POSTERS or is_admin(user):
        return
    if role == Role.READONLY:
        raise Forbidden("readonly members cannot post in this room")
    raise Forbidden("join the room to post in it")


def check_can_edit_message(user: User, message: MessageFields) -> None:
    """Only the author edits a message."""
    if message.user_id != user.id:
        raise Forbidden("only the author can edit a message")


def check_can_delete_message(user: User, message: MessageFields, role: Role | None) -> None:
    """The author, the room's owner and moderators, and admins delete a message."""
    if message.user_id != user.id and role not in MANAGERS and not is_admin(user):
        raise Forbidden("only the author, the room's owner or moderators can delete a message")


def check_can_pin(user: User, room: Room, role: Role | None) -> None:
    """A room's owner, moderators and admins pin and unpin its messages; a DM's participants, and only they, its."""
    if room.kind == DM:
        check_participant(room, role)
    elif role not in MANAGERS and not is_admin(user):
        raise Forbidden("only the room's owner and moderators can pin or unpin its messages")


def check_can_manage_room(user: User, role: Role | None) -> None:
    """Editing or deleting a room it can read is for its owner and admins."""
    if role != Role.OWNER and not is_admin(user):
        raise Forbidden("only the room's owner can change it")


def check_not_dm(room: Room) -> None:
    """A DM is fixed: nobody, admins included, changes its participants or roles, renames, deletes or leaves it."""
    if room.kind == DM:
        raise Forbidden("a direct message's participants are fixed; it is never renamed, deleted or left")


def check_participant(room: Room, role: Role | None) -> None:
    """Only its participants join or post in a DM; admins may read one, but entering it would change who is in it."""
    if room.kind == DM and role is None:
        raise Forbidden("only its participants take part in a direct message")


def check_can_set_role(user: User, role: Role | None, target_role: Role | None, new_role: Role) -> None:
    """Owners set any role but owner; moderators add or demote only members and readonly users."""
    if target_role == Role.OWNER:
        raise Forbidden("the owner's role cannot be changed")
    if is_admin(user) or role == Role.OWNER:
        return
    if _moderates(role, target_role) and new_role in MODERATED:
        return
    raise Forbidden("your role does not allow this change")


def check_can_remove(user: User, role: Role | None, target_role: Role | None) -> None:
    """Owners remove anyone but themselves; moderators remove members and readonly users."""
    if target_role == Role.OWNER:
        raise Forbidden("the owner cannot be removed; delete the room instead")
    if is_admin(user) or role == Role.OWNER or _moderates(role, target_role):
        return
    raise Forbidden("your role does not allow removing this member")


def check_can_ban(user: User, role: Role | None, target: User, target_role: Role | None) -> None:
    """Owners and admins ban anyone but the owner and admins; moderators ban members, readonly users and outsiders."""
    if target_role == Role.OWNER:
        raise Forbidden("the owner cannot be banned; delete the room instead")
    if is_admin(target):
        raise Forbidden("admins cannot be banned")
    if is_admin(user) or role == Role.OWNER or _moderates(role, target_role):
        return
    raise Forbidden("your role does not allow banning this user")


def check_can_manage_bans(user: User, role: Role | None) -> None:
    """A room's bans are seen and lifted by its owner, its moderators and admins."""
    if role not in MANAGERS and not is_admin(user):
        raise Forbidden("only the room's owner and moderators can see or lift its bans")


def check_not_banned(sanctions: set[Sanction]) -> None:
    """A banned user cannot join a room or post in it until unbanned."""
    if Sanction.BAN in sanctions:
        raise Forbidden("you are banned from this room")


def check_can_add(sanctions: set[Sanction]) -> None:
    """A banned user cannot be added to a room until unbanned."""
    if Sanction.BAN in sanctions:
        raise Forbidden("this user is banned from this room; lift the ban first")


def _moderates(role: Role | None, target_role: Role | None) -> bool:
    """Whether a moderator acts on a user without a role, a member or a readonly member."""
    return role == Role.MODERATOR and (target_role is None or target_role in MODERATED)
