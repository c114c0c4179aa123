"""Accounts: registration, password checks (argon2id), admin promotion."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from mongoengine import NotUniqueError

from model.user import User
from services import members
from utils.errors import Conflict, Unauthorized
from utils.offload import off_the_loop
from utils.timefmt import utcnow

# Hashes running at once off the event loop: each holds ARGON2_MEMORY_COST (64 MiB by default).
HASHES_AT_ONCE = 4


def _hasher():
    config = current_app.config
    return PasswordHasher(
        time_cost=config["ARGON2_TIME_COST"],
        memory_cost=config["ARGON2_MEMORY_COST"],
        parallelism=config["ARGON2_PARALLELISM"],
    )


def do_register(username: str, password: str, display_name: str | None = None) -> User:
    """Create a user, a member of `general` from the start; 409 when the name is taken."""
    user = User(
        username=username,
        username_key=username.lower(),
        username_length=len(username),
        display_name=display_name or username,
        password_hash=_off_the_loop(_hasher().hash, password),
        role="user",
        created_at=utcnow(),
    )
    try:
        user.save(force_insert=True)
    except NotUniqueError:
        raise Conflict.taken("username", username) from None
    members.add_to_general(user)
    return user


def check_credentials(username: str, password: str) -> User:
    """Return the user whose password this is; unknown user and wrong password fail alike."""
    hasher = _hasher()
    user = User.objects(username_key=username.lower()).first()
    try:
        # An unknown user still costs one hash, so timing does not reveal which names exist.
        _off_the_loop(hasher.verify, user.password_hash if user else _dummy_hash(hasher), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("wrong username or password")
    if hasher.check_needs_rehash(user.password_hash):
        User.objects(id=user.id).update_one(set__password_hash=_off_the_loop(hasher.hash, password))
    return user


def _dummy_hash(hasher):
    hashes = current_app.extensions.setdefault("dummy_password_hash", {})
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in hashes:
        hashes[key] = _off_the_loop(hasher.hash, "not-a-real-password")
    return hashes[key]


def _off_the_loop(work, *args):
    """Run `work` (an argon2 call, ~0.4 s of CPU) off the event loop, HASHES_AT_ONCE at most."""
    return off_the_loop("password hashes", HASHES_AT_ONCE, work, *args)
