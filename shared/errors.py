"""Domain errors. Each carries the HTTP status and a message a person can read."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class InvalidInput(AppError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class ProviderFailed(AppError):
    status_code = 502
    code = "provider_error"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


class RateLimited(AppError):
    """Too many requests; `retry_after_s` is sent as the Retry-After header."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s
