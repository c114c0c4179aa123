"""Users by id, and the admin promotion that no request can perform."""

from bson import ObjectId

from model.user import User
from utils.errors import NotFound
from utils.ids import get_by_id


def get_user(user_id: str | ObjectId) -> User:
    """Return the user with this id, or raise NotFound."""
    user = get_by_id(User, user_id)
    if user is None:
        raise NotFound.user(user_id)
    return user


def do_make_admin(username: str) -> User:
    """Give `username` the global admin role; return the user."""
    user = User.objects(username_key=username.lower()).modify(new=True, set__role="admin")
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user
