"""Time-ordered identifiers, so that ordering by id is ordering by creation."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 32-hex-character id: 48 bits of milliseconds, then 80 random bits (UUIDv7-like)."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{os.urandom(10).hex()}"
