"""The data root, laid out as the deployment's volumes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from shared.batching import Batcher
from shared.config import Settings

VOLUME_DIRS = (
    "data",
    "chroma",
    "uploads/media",
    "uploads/documents",
    "exports/backups",
    "cache/transcripts",
)


def ensure_layout(settings: Settings) -> Path:
    """Create every volume directory under DATA_DIR (idempotent) and return the root."""
    root = settings.data_dir.resolve()
    for sub in VOLUME_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def transcripts_dir(settings: Settings) -> Path:
    """Cached transcripts, named by the SHA-256 of the media file they came from."""
    return settings.data_dir.resolve() / "cache" / "transcripts"


def file_sha256(path: Path, block_size: int = 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


class TextFiles:
    """Writes text files off the event loop: the files asked for while a write is in
    flight are written together in the next hop to a thread (a hop per file was ~8 % of
    the CPU of a note's POST under load; creating a file is too slow here for the loop)."""

    def __init__(self) -> None:
        self._batcher: Batcher[tuple[Path, str], None] = Batcher(_write_in_thread)

    async def write(self, path: Path, text: str) -> None:
        """Write `text` as UTF-8 to `path` (replacing it); raise what writing it raised."""
        await self._batcher.submit((path, text))

    async def close(self) -> None:
        await self._batcher.close()


async def _write_in_thread(files: list[tuple[Path, str]]) -> list[Exception | None]:
    return await asyncio.to_thread(_write_each, files)


def _write_each(files: list[tuple[Path, str]]) -> list[Exception | None]:
    results: list[Exception | None] = []
    for path, text in files:
        try:
            path.write_text(text, encoding="utf-8")
        except Exception as exc:  # this file's own failure (a full disk, a lone surrogate)
            results.append(exc)
        else:
            results.append(None)
    return results
