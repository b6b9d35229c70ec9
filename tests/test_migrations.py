"""Alembic: migrations apply on an empty database, are idempotent, and match the models."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shared.config import Settings
from tests.conftest import BIN, ROOT, process_env


def alembic(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "alembic"), *args],
        cwd=ROOT,
        env=process_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )


def test_upgrade_twice_then_models_match(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(update={"data_dir": tmp_path})
    for _ in range(2):
        result = alembic(fresh, "upgrade", "head")
        assert result.returncode == 0, result.stderr
    current = alembic(fresh, "current")
    assert "(head)" in current.stdout
    check = alembic(fresh, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert (tmp_path / "data" / "brainwave.db").exists()
