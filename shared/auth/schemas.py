from __future__ import annotations

from datetime import datetime

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, EmailStr, Field


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# The email validator refuses special-use domains (RFC 6761: .test, .local, .invalid …);
# the OpenAPI says so, as a pattern JSON Schema can check (no inline flags: any case).
_SPECIAL_USE = "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES))
_NOT_SPECIAL_USE = f"^(?!.*[.@]({_SPECIAL_USE})$)"


class RegisterIn(BaseModel):
    email: EmailStr = Field(
        description="A deliverable address: special-use domains (.test, .local …) are refused.",
        json_schema_extra={"pattern": _NOT_SPECIAL_USE},
    )
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(default=None, max_length=120)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    display_name: str | None
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. It is shown once and stored only hashed.")
