"""Password hashing (argon2id, off the event loop), JWTs and API-key digests."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import Unauthorized
from shared.ids import new_id

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "bw_"

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
# Verified when an email is unknown, so a login takes as long whether or not the user exists.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

TokenType = Literal["access", "refresh"]


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    jti: str
    type: TokenType
    expires_at: datetime
    family_id: str | None = None


def encode_token(
    secret: str,
    *,
    user_id: str,
    token_type: TokenType,
    lifetime: timedelta,
    family_id: str | None = None,
) -> tuple[str, TokenClaims]:
    now = datetime.now(UTC)
    claims = TokenClaims(user_id, new_id(), token_type, now + lifetime, family_id)
    payload: dict[str, Any] = {
        "sub": user_id,
        "jti": claims.jti,
        "typ": token_type,
        "iat": now,
        "exp": claims.expires_at,
    }
    if family_id:
        payload["fam"] = family_id
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM), claims


VERIFIED_CACHE_SIZE = 4096
_verified: dict[tuple[str, str], TokenClaims] = {}
"""Tokens whose signature and claims were checked, by (secret, token): an HS256 check cost
~6 % of the API's CPU on a job-creating POST, and clients send the same token for
15 minutes. Only successes are kept; the expiry (the one check that changes with time:
`iat` and `nbf` only ever become valid) is checked on every use."""


def decode_token(secret: str, token: str, *, expected_type: TokenType) -> TokenClaims:
    """Decode and check a JWT; only HS256 is accepted (never `none`, never another key)."""
    claims = _verified.get((secret, token))
    if claims is None:
        claims = _verify(secret, token, expected_type)
        if len(_verified) >= VERIFIED_CACHE_SIZE:
            _verified.pop(next(iter(_verified)), None)  # the oldest
        _verified[(secret, token)] = claims
    elif claims.expires_at.timestamp() <= time.time():  # as PyJWT: expired at `exp`
        raise Unauthorized("The token has expired.")
    if claims.type != expected_type:
        raise Unauthorized(f"An {expected_type} token is required here.")
    return claims


def _verify(secret: str, token: str, expected_type: TokenType) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "jti", "exp", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc
    token_type = payload.get("typ")
    if token_type not in ("access", "refresh"):
        raise Unauthorized(f"An {expected_type} token is required here.")
    return TokenClaims(
        user_id=str(payload["sub"]),
        jti=str(payload["jti"]),
        type=token_type,
        expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        family_id=payload.get("fam"),
    )


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    """SHA-256 is right for a 256-bit random key: nothing to brute-force, and fast to look up."""
    return hashlib.sha256(key.encode()).hexdigest()
