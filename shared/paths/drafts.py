"""What a path generator reads and produces, whichever provider made the modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModuleDraft:
    title: str
    objectives: list[str]
    chunk_ids: list[str]
    material_ids: list[str]
    topics: list[str]
    minutes: int
