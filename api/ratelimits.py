"""Rate limits for the routes that cost the most or invite abuse.

FastAPI reads and parses a request's whole body (a multipart upload is spooled to disk)
before it solves any dependency, so a limit written as a dependency refuses an over-limit
upload only after receiving all of it. The limits that need nothing from the body are
therefore checked by `LimitedRoute` before the body is read: decorate the endpoint with
`@before_body(check)` on a router whose `route_class` is `LimitedRoute`. Only the email
limit of sign-in needs the body (the form) and stays a dependency.

The client IP is the ASGI peer; behind a reverse proxy, uvicorn must trust the proxy's
X-Forwarded-For (`FORWARDED_ALLOW_IPS`, as docker-compose.yml sets it), or every client
shares its address.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import ResourcesDep, api_key_scheme, current_principal, get_resources, oauth2_scheme
from shared import ratelimit
from shared.errors import RateLimited
from shared.resources import Resources

LimitName = Literal[
    "login_ip", "login_email_ip", "login_email", "register_ip", "uploads_user", "chat_user"
]
BeforeBody = Callable[[Request], Awaitable[None]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_BEFORE_BODY = "__brainwave_before_body__"
_MESSAGES: dict[LimitName, str] = {
    "login_ip": "Too many sign-in attempts from this address.",
    "login_email_ip": "Too many sign-in attempts for this account from this address.",
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


def before_body(check: BeforeBody) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint: `LimitedRoute` runs `check` before the request body is read."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _BEFORE_BODY, check)
        return endpoint

    return mark


def before_body_check(endpoint: Callable[..., Any]) -> BeforeBody | None:
    check: BeforeBody | None = getattr(endpoint, _BEFORE_BODY, None)
    return check


class LimitedRoute(APIRoute):
    """A route whose `@before_body` check runs before FastAPI reads the body. A refusal
    (429, or 401 for a missing credential) is raised through the app's error handlers, so
    it has the same shape and headers as any other; the unread body is never parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check = before_body_check(self.endpoint)
        if check is None:
            return handler

        async def checked_first(request: Request) -> Response:
            await check(request)
            return await handler(request)

        return checked_first


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _user_id(request: Request, resources: Resources) -> str:
    """The caller, authenticated as the route's own dependency will be (401 when not)."""
    token, api_key = await oauth2_scheme(request), await api_key_scheme(request)
    return (await current_principal(request, resources, token, api_key)).user_id


async def limit_login_ip(request: Request) -> None:
    """Per client IP: password spraying across many accounts."""
    await enforce(await get_resources(request), "login_ip", client_ip(request))


async def limit_login_email(
    request: Request,
    resources: ResourcesDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> None:
    """Guessing one account's password (a dependency: it needs the form). Tight per email
    and address, looser per email from everywhere: an attempt refused by the first is not
    counted by the second, so one address cannot lock the owner out of their account; it
    takes many, and even they get only the looser number of guesses."""
    email = form.username.strip().lower()
    await enforce(resources, "login_email_ip", f"{email} {client_ip(request)}")
    await enforce(resources, "login_email", email)


async def limit_register(request: Request) -> None:
    await enforce(await get_resources(request), "register_ip", client_ip(request))


UPLOAD_COUNTED = "upload_counted"
"""Set in the request's state by api/text_fastpath.py when it counted the upload and then
handed the request to the route (a body the route must refuse): not counted twice."""


async def limit_uploads(request: Request) -> None:
    resources = await get_resources(request)
    user_id = await _user_id(request, resources)
    if not getattr(request.state, UPLOAD_COUNTED, False):
        await enforce(resources, "uploads_user", user_id)


async def limit_chat(request: Request) -> None:
    resources = await get_resources(request)
    await enforce(resources, "chat_user", await _user_id(request, resources))
