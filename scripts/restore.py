"""Restore a backup: `python -m scripts.restore <backup dir> [--data-dir DIR] [--force]`.

Stop the API and the workers first. The database is copied into DATA_DIR (or the SQLite
file DATABASE_URL names) and the vectors are loaded into the Chroma server at CHROMA_URL;
a target that holds data is left alone unless --force is given. Exit status: 0 restored
and verified, 2 refused, 1 the restored counts differ from the manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from shared.backups.restore import RestoreMismatch, RestoreRefused, restore
from shared.config import Settings


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.restore", description=__doc__)
    parser.add_argument("backup", type=Path, help="a directory under exports/backups/")
    parser.add_argument("--data-dir", type=Path, help="the data root to restore into")
    parser.add_argument("--chroma-url", help="the Chroma server to load the vectors into")
    parser.add_argument("--force", action="store_true", help="replace a non-empty target")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    overrides = {"data_dir": args.data_dir, "chroma_url": args.chroma_url}
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v})
    try:
        asyncio.run(restore(args.backup, settings, force=args.force, echo=print))
    except RestoreRefused as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 2
    except RestoreMismatch as exc:
        print(f"restore failed verification: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.backup}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
