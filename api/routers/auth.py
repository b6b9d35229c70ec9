from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import (
    REVOKED_ACCESS_PREFIX,
    PrincipalDep,
    ReadSessionDep,
    ResourcesDep,
    SessionDep,
    SettingsDep,
    UserId,
)
from api.errors import responses
from api.ratelimits import (
    LimitedRoute,
    before_body,
    limit_login_email,
    limit_login_ip,
    limit_register,
)
from shared.auth import service as auth
from shared.auth.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    LogoutIn,
    RefreshIn,
    RegisterIn,
    TokenPair,
    UserOut,
)

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=LimitedRoute)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=responses(409, 422, 429),
)
@before_body(limit_register)
async def register(data: RegisterIn, session: SessionDep) -> UserOut:
    user = await auth.register(session, data)
    await session.commit()
    return UserOut.model_validate(user)


@router.post(
    "/login", responses=responses(401, 422, 429), dependencies=[Depends(limit_login_email)]
)
@before_body(limit_login_ip)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    read: ReadSessionDep,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenPair:
    """OAuth2 password flow: `username` is the email."""
    user = await auth.authenticate(read, form.username, form.password)
    await read.close()  # the password check is slow; no transaction is held across it
    tokens = await auth.issue_tokens(session, settings, user.id)
    await session.commit()
    return tokens


@router.post("/refresh", responses=responses(401, 422))
async def refresh(data: RefreshIn, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Rotate: the old refresh token is spent; reusing it revokes the whole session."""
    try:
        return await auth.rotate_refresh_token(session, settings, data.refresh_token)
    finally:
        await session.commit()  # a detected reuse must revoke even though we answer 401


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401))
async def logout(
    principal: PrincipalDep,
    session: SessionDep,
    resources: ResourcesDep,
    data: LogoutIn | None = None,
) -> Response:
    """Revoke this session's refresh tokens and the access token used for this call."""
    await auth.logout(
        session, resources.settings, principal.user_id, data.refresh_token if data else None
    )
    await session.commit()
    if principal.token_jti:
        ttl = max(1, int(principal.token_expires_at - time.time()) + 1)
        await resources.redis.set(REVOKED_ACCESS_PREFIX + principal.token_jti, b"1", ex=ttl)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", responses=responses(401, 404))
async def me(user_id: UserId, session: SessionDep) -> UserOut:
    return UserOut.model_validate(await auth.get_user(session, user_id))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, responses=responses(401, 422))
async def create_api_key(data: ApiKeyIn, user_id: UserId, session: SessionDep) -> ApiKeyCreated:
    row, key = await auth.create_api_key(session, user_id, data.name)
    await session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("/api-keys", responses=responses(401))
async def list_api_keys(user_id: UserId, session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in await auth.list_api_keys(session, user_id)]


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 404)
)
async def revoke_api_key(key_id: str, user_id: UserId, session: SessionDep) -> Response:
    await auth.revoke_api_key(session, user_id, key_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
