"""Rate-limit dependencies for the routes that cost the most or invite abuse.

Add them to a route with `dependencies=[Depends(...)]`: route dependencies run before the
route's own, so a refused request opens no database session. The client IP is the ASGI
peer; behind a reverse proxy, uvicorn must trust the proxy's X-Forwarded-For
(`FORWARDED_ALLOW_IPS`, as docker-compose.yml sets it), or every client shares its address.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import ResourcesDep, UserId
from shared import ratelimit
from shared.errors import RateLimited
from shared.resources import Resources

LimitName = Literal["login_ip", "login_email", "register_ip", "uploads_user", "chat_user"]

_MESSAGES: dict[LimitName, str] = {
    "login_ip": "Too many sign-in attempts from this address.",
    "login_email": "Too many sign-in attempts for this account.",
    "register_ip": "Too many accounts created from this address.",
    "uploads_user": "Too many materials added in a short time.",
    "chat_user": "Too many messages in a short time.",
}


async def enforce(resources: Resources, name: LimitName, subject: str) -> None:
    """Count a request against limit `name` for `subject`; raise RateLimited when over."""
    rate, key = limit_of(resources, name, subject)
    wait_s = await resources.limiter.hit(key, rate)
    if wait_s:
        raise refused(name, wait_s)


def limit_of(resources: Resources, name: LimitName, subject: str) -> tuple[ratelimit.Rate, str]:
    """The rate of limit `name` (from the settings) and its Redis key for `subject`."""
    rate = _parsed(getattr(resources.settings, f"rate_limit_{name}"))
    return rate, ratelimit.subject_key(name, subject)


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> ratelimit.Rate:
    return ratelimit.Rate.parse(text)  # a regular expression: once per setting, not per request


def refused(name: LimitName, wait_s: int) -> RateLimited:
    return RateLimited(f"{_MESSAGES[name]} Try again in {wait_s} s.", retry_after_s=wait_s)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def limit_login(
    request: Request,
    resources: ResourcesDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> None:
    """Per client IP (password spraying) and per email (guessing one account's password)."""
    await enforce(resources, "login_ip", client_ip(request))
    await enforce(resources, "login_email", form.username.strip().lower())


async def limit_register(request: Request, resources: ResourcesDep) -> None:
    await enforce(resources, "register_ip", client_ip(request))


async def limit_uploads(user_id: UserId, resources: ResourcesDep) -> None:
    await enforce(resources, "uploads_user", user_id)


async def limit_chat(user_id: UserId, resources: ResourcesDep) -> None:
    await enforce(resources, "chat_user", user_id)
