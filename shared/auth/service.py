"""Accounts, sessions (access + rotating refresh tokens) and API keys.

Services flush; the caller (request dependency or job wrapper) commits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import security
from shared.auth.models import ApiKey, RefreshToken, User
from shared.auth.schemas import RegisterIn, TokenPair
from shared.config import Settings
from shared.errors import Conflict, NotFound, Unauthorized
from shared.ids import new_id


async def register(session: AsyncSession, data: RegisterIn) -> User:
    email = data.email.lower()
    # Hash before the first statement: a write transaction must not wait on argon2.
    password_hash = await security.hash_password(data.password)
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("An account with this email already exists.")
    user = User(email=email, password_hash=password_hash, display_name=data.display_name)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists.") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == email.lower()))
    ok = await security.verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise Unauthorized("Incorrect email or password.")
    return user


async def issue_tokens(
    session: AsyncSession, settings: Settings, user_id: str, family_id: str | None = None
) -> TokenPair:
    access, _ = security.encode_token(
        settings.jwt_secret,
        user_id=user_id,
        token_type="access",
        lifetime=timedelta(minutes=settings.access_token_minutes),
    )
    refresh, claims = security.encode_token(
        settings.jwt_secret,
        user_id=user_id,
        token_type="refresh",
        lifetime=timedelta(days=settings.refresh_token_days),
        family_id=family_id or new_id(),
    )
    assert claims.family_id is not None
    session.add(
        RefreshToken(
            id=claims.jti,
            user_id=user_id,
            family_id=claims.family_id,
            expires_at=claims.expires_at,
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_minutes * 60,
    )


async def rotate_refresh_token(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair.

    A token can be used once. Presenting a used one means it was stolen (or replayed), so
    the whole family — every token descended from that login — is revoked.
    """
    claims = security.decode_token(settings.jwt_secret, token, expected_type="refresh")
    row = await session.get(RefreshToken, claims.jti)
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The refresh token has been revoked.")
    now = datetime.now(UTC)
    if row.used_at is not None:
        await revoke_family(session, row.family_id)
        raise Unauthorized("The refresh token was already used; this session has been revoked.")
    used = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        await revoke_family(session, row.family_id)
        raise Unauthorized("The refresh token was already used; this session has been revoked.")
    return await issue_tokens(session, settings, row.user_id, family_id=row.family_id)


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def logout(
    session: AsyncSession, settings: Settings, user_id: str, token: str | None
) -> None:
    """Revoke the refresh-token family of this session (when the client sends its token)."""
    if not token:
        return
    claims = security.decode_token(settings.jwt_secret, token, expected_type="refresh")
    if claims.user_id != user_id:
        raise Unauthorized("The refresh token belongs to another account.")
    if claims.family_id:
        await revoke_family(session, claims.family_id)


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("User not found.")
    return user


async def create_api_key(session: AsyncSession, user_id: str, name: str) -> tuple[ApiKey, str]:
    key = security.new_api_key()
    row = ApiKey(
        user_id=user_id,
        name=name,
        prefix=key[:10],
        key_hash=security.api_key_digest(key),
    )
    session.add(row)
    await session.flush()
    return row, key


async def list_api_keys(session: AsyncSession, user_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id.desc())
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, user_id: str, key_id: str) -> None:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("API key not found.")


async def user_id_for_api_key(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(
        select(ApiKey.user_id).where(
            ApiKey.key_hash == security.api_key_digest(key), ApiKey.revoked_at.is_(None)
        )
    )
