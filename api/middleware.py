"""Pure-ASGI middleware (BaseHTTPMiddleware would buffer streaming responses)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with a 413 in the API's error shape, and close
    the connection after any answer given before the body was read.

    A declared Content-Length over the limit is refused before anything is read; a body
    sent without one is counted while it streams, and the route's body parsing stops with
    the same 413 as soon as it passes the limit, so an oversize upload is refused while it
    streams and never fills the disk. `path_limits` gives upload routes their own limit.

    An answer that comes before the end of the body (this 413; a 401 or 429 of a check
    that runs before the body, `api.ratelimits.LimitedRoute`) says `Connection: close`:
    to keep the connection for another request, uvicorn would otherwise read and throw
    away the rest of the body — up to 200 MB of a refused upload.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        message = f"The request body is larger than {_human(limit)}."
        declared, chunked = _declared_body(scope)
        if declared is not None and declared > limit:
            headers = {"Connection": "close"}
            response = error_response(413, "payload_too_large", message, headers=headers)
            await response(scope, receive, send)
            return
        if not chunked and not declared:
            await self.app(scope, receive, send)
            return
        received = 0
        body_read = False

        async def counting_receive() -> Message:
            nonlocal received, body_read
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                body_read = not event.get("more_body", False)
                if received > limit:
                    raise HTTPException(413, message)
            return event

        async def closing_send(event: Message) -> None:
            if event["type"] == "http.response.start" and not body_read:
                event = {**event, "headers": [*event.get("headers", ()), _CLOSE]}
            await send(event)

        await self.app(scope, counting_receive, closing_send)


_CLOSE = (b"connection", b"close")


def _declared_body(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None if absent or not a number) and whether its body
    is chunked."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


def _human(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size} bytes"
