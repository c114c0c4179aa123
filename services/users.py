"""Users by id, name or name prefix, and the admin promotion that no request can perform."""

from bson import ObjectId
from mongoengine import QuerySet

from model.user import BY_LENGTH, User
from utils.errors import NotFound
from utils.ids import get_by_id


def get_user(user_id: str | ObjectId) -> User:
    """Return the user with this id, or raise NotFound."""
    user = get_by_id(User, user_id)
    if user is None:
        raise NotFound.user(user_id)
    return user


def find_user(ref: str) -> User:
    """Return the user named by id or username (any case), or raise NotFound repeating `ref`."""
    user = get_by_id(User, ref) or User.objects(username_key=ref.lower()).first()
    if user is None:
        raise NotFound.user(ref)
    return user


def search_users(prefix: str, limit: int) -> list[User]:
    """Up to `limit` users whose username starts with `prefix` (any case), shortest first, then by name."""
    return list(by_prefix(prefix).limit(limit))


def by_prefix(prefix: str) -> QuerySet:
    """The query of `search_users`: a range of the lower-cased usernames, read from the (length, name) index."""
    low = prefix.lower()
    high = low[:-1] + chr(ord(low[-1]) + 1)  # the first key past every name that starts with `low`
    return (
        User.objects(username_length__gte=len(low), username_key__gte=low, username_key__lt=high)
        .order_by(*(name for name, _ in BY_LENGTH))
        .hint(BY_LENGTH)
    )


def do_make_admin(username: str) -> User:
    """Give `username` the global admin role; return the user."""
    user = User.objects(username_key=username.lower()).modify(new=True, set__role="admin")
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user
