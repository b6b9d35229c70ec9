"""Pure-ASGI middleware (BaseHTTPMiddleware would buffer streaming responses)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response


class DeclaredBodyLimit:
    """Answer 413 in the API's error shape when Content-Length already exceeds the limit.

    Bodies sent without a length are limited while streaming by FastAPI's `max_body_size`
    (whose 413 passes through our error handler); this covers the common case before
    anything is read, in the same JSON shape as every other error.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.max_bytes:
                        response = error_response(
                            413,
                            "payload_too_large",
                            f"The request body is larger than {self.max_bytes} bytes.",
                        )
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
