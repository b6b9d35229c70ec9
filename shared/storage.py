"""The data root, laid out as the deployment's volumes."""

from __future__ import annotations

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
