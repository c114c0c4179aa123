"""What a room holds against a user beyond a membership: the remembered readonly role."""

from mongoengine import NotUniqueError

from model.membership import Role
from model.room_sanction import RoomSanction, Sanction
from utils.timefmt import utcnow


def do_remember_role(room_id, user_id, role, by):
    """Remember a readonly role beyond the membership, so rejoining keeps it; any other role forgets it."""
    if role == Role.READONLY:
        impose(room_id, user_id, Sanction.READONLY, by)
    else:
        RoomSanction.objects(room=room_id, user=user_id, kind=Sanction.READONLY).delete()


def impose(room_id, user_id, kind, by):
    """Store a sanction unless the room holds it already; return the stored one (the first stays)."""
    held = RoomSanction.objects(room=room_id, user=user_id, kind=kind)
    try:
        return held.modify(upsert=True, new=True, set_on_insert__by=by.id, set_on_insert__created_at=utcnow())
    except NotUniqueError:
        # A concurrent request inserted it first; the unique index kept one.
        return held.get()
