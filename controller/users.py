"""Finding users: by username prefix, by id or username."""

from middleware.auth import auth_required
from middleware.limits import per_user
from services import users
from utils.api import endpoint
from utils.schemas.accounts import UserSchema
from utils.schemas.users import UserListSchema, UserSearchQuery


@auth_required
@per_user("read")
@endpoint(query=UserSearchQuery(), response=UserListSchema(), errors=(429,))
def search(query):
    """Users whose username starts with `q` (any case), shortest first."""
    return {"users": users.search_users(query["q"], query["limit"])}


@auth_required
@endpoint(response=UserSchema(), errors=(404,))
def get_user(user_ref):
    """One user, by id or username (any case)."""
    return users.find_user(user_ref)
