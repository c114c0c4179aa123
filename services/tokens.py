"""JWT access and refresh tokens: issue, authenticate, rotate, revoke."""

from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import ExpiredSignatureError, PyJWTError
from mongoengine import NotUniqueError

from model.revoked_token import RevokedToken
from model.user import User
from services import notify
from utils.errors import Unauthorized
from utils.ids import parse_id
from utils.timefmt import utcnow


def issue_pair(user):
    """Return (accessToken, refreshToken); the access token names its refresh token, so logout ends both."""
    identity = str(user.id)
    refresh = create_refresh_token(identity=identity)
    access = create_access_token(identity=identity, additional_claims={"rjti": decode_token(refresh)["jti"]})
    return access, refresh


def authenticate(token, token_type="access"):
    """Return (user, claims) for a valid, unrevoked token of `token_type`, or raise Unauthorized."""
    if not isinstance(token, str) or not token:
        raise Unauthorized("missing token")
    try:
        claims = decode_token(token)
    except ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except (PyJWTError, JWTExtendedException, ValueError):
        raise Unauthorized("invalid token") from None
    if claims.get("type") != token_type:
        raise Unauthorized(
            f"an {token_type} token is required" if token_type == "access" else "a refresh token is required"
        )
    if RevokedToken.objects(jti=claims["jti"]).first() is not None:
        raise Unauthorized("token revoked")
    user_id = parse_id(claims.get("sub"))
    user = User.objects(id=user_id).first() if user_id else None
    if user is None:
        raise Unauthorized("user no longer exists")
    return user, claims


def do_refresh(user, claims):
    """Rotate a refresh token: revoke it (once, even under a race) and issue a new pair."""
    try:
        RevokedToken(jti=claims["jti"], expires_at=_expiry(claims)).save(force_insert=True)
    except NotUniqueError:
        raise Unauthorized("token revoked") from None
    return issue_pair(user)


def do_logout(claims):
    """Revoke an access token and the refresh token issued with it."""
    refresh_expiry = utcnow() + timedelta(seconds=current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])
    _revoke(claims["jti"], _expiry(claims))
    if claims.get("rjti"):
        _revoke(claims["rjti"], refresh_expiry)
    notify.notify_token_revoked(claims["jti"])


def _revoke(jti, expires_at):
    RevokedToken.objects(jti=jti).update_one(upsert=True, set_on_insert__expires_at=expires_at)


def _expiry(claims):
    return datetime.fromtimestamp(claims["exp"], tz=UTC)
