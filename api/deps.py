"""Request dependencies as Annotated aliases: resources, sessions, the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.account.erase import signed_out_key
from shared.auth import security
from shared.auth import service as auth
from shared.auth.security import TokenClaims
from shared.config import Settings
from shared.errors import Unauthorized
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.resources import Resources

REVOKED_ACCESS_PREFIX = "brainwave:revoked-access:"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings_dep(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def write_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A session whose route commits explicitly (see shared.jobs.service.commit_and_enqueue);
    whatever is not committed is rolled back when it closes."""
    async with resources.db.sessionmaker() as session:
        yield session


async def read_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with resources.db.read_sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(write_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(read_session)]


class Principal:
    __slots__ = ("token_expires_at", "token_jti", "user_id")

    def __init__(self, user_id: str, token_jti: str | None = None, expires_at: float = 0) -> None:
        self.user_id = user_id
        self.token_jti = token_jti
        self.token_expires_at = expires_at


async def current_principal(
    request: Request,
    resources: ResourcesDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """The caller, authenticated once per request: a rate limit checked before the body
    (api.ratelimits) has already done it for the route's own dependencies."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await _authenticate(resources, token, api_key)
        request.state.principal = principal
    return principal


async def _authenticate(resources: Resources, token: str | None, api_key: str | None) -> Principal:
    """Bearer access JWT (checked against the logout denylist and erased accounts, in one
    round trip) or an X-API-Key."""
    if token:
        claims = security.decode_token(resources.settings.jwt_secret, token, expected_type="access")
        if await resources.redis.exists(*revocation_keys(claims)):
            raise revoked()
        return Principal(claims.user_id, claims.jti, claims.expires_at.timestamp())
    if api_key:
        async with resources.db.read_sessionmaker() as session:
            user_id = await auth.user_id_for_api_key(session, api_key)
        if user_id is None:
            raise Unauthorized("The API key is not valid.")
        return Principal(user_id)
    raise Unauthorized("Authentication required: send a Bearer token or an X-API-Key.")


def revocation_keys(claims: TokenClaims) -> tuple[str, str]:
    """The Redis keys whose existence revokes an access token: its own mark (logout) and
    its user's (the account was erased)."""
    return REVOKED_ACCESS_PREFIX + claims.jti, signed_out_key(claims.user_id)


def revoked() -> Unauthorized:
    return Unauthorized("The token has been revoked.")


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def current_user_id(principal: PrincipalDep) -> str:
    return principal.user_id


UserId = Annotated[str, Depends(current_user_id)]


Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT}).")
]
Cursor = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]
