"""`POST /api/materials/text`, served without the framework when it can be.

A note is the job a learner starts most often. Through FastAPI's routing and dependency
solving the route spent ~2 ms of CPU per request here (bench `job_create`), 42 % of it in
the framework's layers. This pure-ASGI middleware does the route's work in the route's
order for the common case — a JSON body with a Content-Length and a Bearer token: the
token's check, then its revocation marks and the upload rate limit in one Redis round
trip, both before the body is read (as the route's `before_body` check: an upload over
the limit is refused without reading it), then the body, which `TextMaterialIn` must
accept, then the same service call. It answers as the route would, with the same body for
a 202 and, for every error from then on (401, 429 with Retry-After, 422 for a value the
database refuses, 503 while Redis is down), the app's own exception handlers.

Everything else goes to the route with its body intact: another content type, a body
without Content-Length (the body limit is then counted while it streams, which only the
route turns into a 413), an API key or no credentials (before any side effect), and a
body the model refuses (the route's 422 names the fields; the upload was counted, so the
route does not count it again). The OpenAPI document still comes from the route, and the
metrics count these requests under its template.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import revocation_keys, revoked
from api.fastpath import bearer_token
from api.observability import ROUTE_KEY
from api.ratelimits import UPLOAD_COUNTED, limit_of, refused
from shared.auth import security
from shared.auth.security import TokenClaims
from shared.materials import service as materials
from shared.materials.schemas import MaterialCreated, TextMaterialIn
from shared.resources import Resources

PATH = "/api/materials/text"
_ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class TextMaterialFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
            and _json_with_length(scope)
        ):
            onward = await self._serve(scope, receive, send)
            if onward is None:
                return
            receive = onward
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request and return None, or return the `receive` the route is to
        read the body from (the client's, or one replaying what was read)."""
        resources: Resources | None = getattr(scope["app"].state, "resources", None)
        token = bearer_token(scope)
        if resources is None or token is None:
            return receive
        scope[ROUTE_KEY] = PATH
        try:
            claims = security.decode_token(
                resources.settings.jwt_secret, token, expected_type="access"
            )
            await _count(resources, claims)
        except Exception as exc:
            await (await _handled(scope, exc))(scope, receive, send)
            return None
        messages, body = await _read_body(receive)
        data = _valid(body)
        if data is None:
            scope.setdefault("state", {})[UPLOAD_COUNTED] = True
            return _replayed(messages, receive)
        try:
            response = await _create(resources, claims.user_id, data)
        except Exception as exc:
            response = await _handled(scope, exc)
        await response(scope, receive, send)
        return None


async def _count(resources: Resources, claims: TokenClaims) -> None:
    """What the route's `current_principal` and `before_body(limit_uploads)` check."""
    rate, key = limit_of(resources, "uploads_user", claims.user_id)
    wait_s = await resources.limiter.hit_unless(key, rate, revocation_keys(claims))
    if wait_s is None:
        raise revoked()
    if wait_s:
        raise refused("uploads_user", wait_s)


def _valid(body: bytes | None) -> TextMaterialIn | None:
    if body is None:
        return None
    try:
        return TextMaterialIn.model_validate_json(body)
    except ValidationError:
        return None


async def _create(resources: Resources, user_id: str, data: TextMaterialIn) -> Response:
    material, job = await materials.create_text_material(
        resources.job_states, resources.text_files, resources.settings, user_id, data
    )
    body = MaterialCreated(material=material, job=job.job).model_dump_json()
    return Response(body, status_code=202, media_type="application/json")


async def _handled(scope: Scope, exc: Exception) -> Response:
    """The app's answer to `exc`, from the handler the route's failure would reach; an
    exception without one (or that its handler re-raises) goes on to the server-error
    middleware, as it would from the route."""
    handlers: dict[object, _ExceptionHandler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None and cls is not Exception:
            return await handler(Request(scope), exc)
    raise exc


def _json_with_length(scope: Scope) -> bool:
    content_type = length = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and length is None:
            length = value
    if content_type is None or length is None:
        return False
    media_type: bytes = content_type.partition(b";")[0].strip().lower()
    return media_type == b"application/json"


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages received and the whole body (None if the client went away first)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replayed(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the route: the messages already read, then the client's."""
    unread = deque(messages)

    async def replay() -> Message:
        return unread.popleft() if unread else await receive()

    return replay
