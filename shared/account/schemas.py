from __future__ import annotations

from pydantic import BaseModel, Field


class AccountDeleteIn(BaseModel):
    password: str = Field(min_length=1, max_length=128, description="The account's password.")
