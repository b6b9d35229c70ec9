"""Pure-ASGI middleware (BaseHTTPMiddleware would buffer streaming responses)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with a 413 in the API's error shape.

    A declared Content-Length over the limit is refused before anything is read; a body
    sent without one is counted while it streams, and the route's body parsing stops with
    the same 413 as soon as it passes the limit. Routes that stream uploads to disk set a
    larger limit of their own via `exempt_paths`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    response = error_response(413, "payload_too_large", self._message)
                    await response(scope, receive, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _message(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."
