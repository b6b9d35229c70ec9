"""Constraints several request schemas share, written so the OpenAPI states exactly what
the API accepts (schemathesis holds both to it: tests/test_fuzz.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

Id = Annotated[str, StringConstraints(min_length=32, max_length=32, pattern="^[0-9a-f]{32}")]
"""An id as `shared.ids.new_id` makes them (no `$`: Python's would allow a final newline)."""


def _not_a_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)
WholeNumber = Annotated[int, NOT_A_BOOLEAN]
"""An integer in a JSON body. Pydantic would take `true` as 1, which JSON Schema's
"integer" refuses; a strict int would refuse 2.0, which JSON Schema accepts. Bounds go
in a `Field` on the attribute; for an optional one, before `NOT_A_BOOLEAN` inside the
Annotated (`Annotated[int, Field(ge=0), NOT_A_BOOLEAN] | None`): otherwise pydantic
still checks them but writes them into the OpenAPI as "ge"/"le", which JSON Schema
does not know (the 500-example fuzz run found one)."""

NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""Pattern of text that must not be blank: a character that `str.strip()` keeps (the
models' validators strip). Spelled out because `\\s` differs between Python, the Rust
regex pydantic checks with and the ECMA-262 regex of JSON Schema (U+0085, U+FEFF)."""
