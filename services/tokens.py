"""JWT access and refresh tokens: issue, authenticate, rotate, revoke.

Every pair belongs to a family (`fam`, one per login) that rotation keeps. A refresh token
used a second time means it was stolen, or its rightful holder's copy was: the whole family
is revoked (OAuth 2.0 Security BCP), and every socket connected with one of its tokens is
disconnected.
"""

import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_jwt_extended.config import config
from jwt.exceptions import ExpiredSignatureError, PyJWTError
from mongoengine import NotUniqueError

from model.batches import in_chunks
from model.revoked_token import RevokedToken
from model.user import User
from services import live
from utils.errors import Unauthorized
from utils.gathered import Gathered
from utils.ids import parse_id
from utils.timefmt import utcnow

# Tokens whose verified claims a process keeps (the latest used): a token is about 300 bytes, its claims as many.
VERIFIED_KEPT = 4096


def issue_pair(user: User, family: str | None = None) -> tuple[str, str]:
    """Return (accessToken, refreshToken) of a family (new by default); the access token names its refresh token."""
    identity, family = str(user.id), family or uuid.uuid4().hex
    refresh = create_refresh_token(identity=identity, additional_claims={"fam": family})
    claims = {"rjti": _decoded(refresh)["jti"], "fam": family}
    return create_access_token(identity=identity, additional_claims=claims), refresh


def family_key(family: str | None) -> str:
    """The revocation record of a whole token family."""
    return f"family:{family}"


def revocation_keys(claims: dict) -> set[str]:
    """The revocation records that would hit a token: its own jti, and its family's key when it has one."""
    return {claims["jti"], family_key(claims["fam"])} if claims.get("fam") else {claims["jti"]}


def revoked_among(claims_list: list[dict]) -> set[str]:
    """The revocation records (jtis and family keys) that hit any of these tokens' claims."""
    keys = set().union(*map(revocation_keys, claims_list))
    return set(RevokedToken.objects(jti__in=list(keys)).distinct("jti"))


def authenticate(token: object, token_type: str = "access") -> tuple[User, dict]:
    """Return (user, claims) for a valid, unrevoked token of `token_type`, or raise Unauthorized."""
    claims = _claims(token, token_type)
    _check_revoked(claims, revoked_among([claims]))
    user_id = parse_id(claims.get("sub"))
    return _found(User.objects(id=user_id).first() if user_id else None), claims


def authenticate_socket(token: object) -> tuple[User, dict]:
    """`authenticate` for a connecting socket's access token: the revocation records and users of the sockets that
    connect at the same moment are read together (`connect_reads`): a query for the revocations and one a chunk of
    users (`in_chunks`) for a storm's worth of sockets."""
    claims = _claims(token, "access")
    revoked, users = connect_reads(claims)
    _check_revoked(claims, revoked)
    return _found(users.get(parse_id(claims.get("sub")))), claims


def _claims(token: object, token_type: str) -> dict:
    if not isinstance(token, str) or not token:
        raise Unauthorized("missing token")
    try:
        claims = _decoded(token)
    except ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except (PyJWTError, ValueError):
        raise Unauthorized("invalid token") from None
    if claims.get("type") != token_type:
        raise Unauthorized(
            f"an {token_type} token is required" if token_type == "access" else "a refresh token is required"
        )
    return claims


def _decoded(token: str) -> dict:
    """A token's verified claims, checked as flask-jwt-extended's `decode_token` checks them (its settings: key,
    algorithms, audience, issuer, leeway; the identity claim present; the same defaults) in one PyJWT decode, where
    `decode_token` parses the token three times: a third of a connect's CPU in a storm of them.

    Verified once a token and settings (`_verified`): a user's tabs, its reconnects and its API calls send the same
    token again, and only its expiry can change its answer."""
    audience, leeway = config.decode_audience, config.leeway
    settings = (
        config.decode_key,
        tuple(config.decode_algorithms),
        audience if audience is None or isinstance(audience, str) else tuple(audience),
        config.decode_issuer,
        leeway,
        config.verify_sub,
        config.identity_claim_key,
    )
    claims = _verified(token, settings)
    seconds = leeway.total_seconds() if isinstance(leeway, timedelta) else leeway
    if "exp" in claims and claims["exp"] <= time.time() - seconds:  # as PyJWT decides it
        raise ExpiredSignatureError("Signature has expired")
    return dict(claims)


@lru_cache(maxsize=VERIFIED_KEPT)
def _verified(token: str, settings: tuple) -> dict:
    """`token`'s claims, verified under `settings` (`_decoded`'s); what fails to verify is not kept."""
    key, algorithms, audience, issuer, leeway, verify_sub, identity_claim = settings
    claims = jwt.decode(
        token,
        key,
        algorithms=list(algorithms),
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        options={"verify_aud": audience is not None, "verify_sub": verify_sub},
    )
    if identity_claim not in claims:
        raise jwt.MissingRequiredClaimError(identity_claim)
    return {"type": "access", "fresh": False, "jti": None} | claims


def _check_revoked(claims: dict, revoked: set[str]) -> None:
    if revocation_keys(claims) & revoked:
        if claims["type"] == "refresh" and claims.get("fam"):
            revoke_family(claims["fam"])  # a rotated refresh token came back: the family is compromised
        raise Unauthorized("token revoked")


def _found(user: User | None) -> User:
    if user is None:
        raise Unauthorized("user no longer exists")
    return user


def _connect_reads(claims: list[dict]) -> tuple[set[str], dict]:
    """The revocation records and users of the tokens of sockets connecting at the same moment: a query for the
    revocations and one a chunk of users."""
    ids = list({parse_id(each.get("sub")) for each in claims} - {None})
    return revoked_among(claims), {user.id: user for chunk in in_chunks(ids) for user in User.objects(id__in=chunk)}


connect_reads = Gathered(_connect_reads)


def do_refresh(user: User, claims: dict) -> tuple[str, str]:
    """Rotate a refresh token: revoke it (once, even under a race) and issue a new pair."""
    try:
        RevokedToken(jti=claims["jti"], expires_at=_expiry(claims)).save(force_insert=True)
    except NotUniqueError:  # used twice at once: one of the two is not its holder
        if claims.get("fam"):
            revoke_family(claims["fam"])
        raise Unauthorized("token revoked") from None
    return issue_pair(user, claims.get("fam"))


def revoke_family(family: str) -> None:
    """Revoke every token of a family and disconnect the sockets that connected with one."""
    _revoke(family_key(family), utcnow() + timedelta(seconds=current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]))
    live.disconnect_tokens(family=family)


def do_logout(claims: dict) -> None:
    """Revoke an access token and the refresh token issued with it."""
    refresh_expiry = utcnow() + timedelta(seconds=current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])
    _revoke(claims["jti"], _expiry(claims))
    if claims.get("rjti"):
        _revoke(claims["rjti"], refresh_expiry)
    live.disconnect_tokens(jtis=(claims["jti"],))


def _revoke(jti, expires_at):
    RevokedToken.objects(jti=jti).update_one(upsert=True, set_on_insert__expires_at=expires_at)


def _expiry(claims):
    return datetime.fromtimestamp(claims["exp"], tz=UTC)
