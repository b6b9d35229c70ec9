"""The data root, laid out as the deployment's volumes."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
