"""`python -m worker [settings class]`: run a worker (default `worker.main.WorkerSettings`).

What arq's CLI (`arq worker.main.WorkerSettings`) does — read the settings class, let the
worker handle SIGINT/SIGTERM — except that it runs our `worker.scheduler.Worker` (arq's
CLI cannot choose the worker class) and logs JSON lines from the start.
"""

from __future__ import annotations

import sys

from arq.typing import WorkerSettingsType
from arq.utils import import_string
from arq.worker import get_kwargs

from shared.config import get_settings
from shared.logging import configure_logging
from worker.lifecycle import WORKER_ID
from worker.scheduler import Worker


def main(argv: list[str]) -> None:
    settings_path = argv[1] if len(argv) > 1 else "worker.main.WorkerSettings"
    settings_cls: WorkerSettingsType = import_string(settings_path)
    configure_logging()
    lease_seconds = get_settings().job_lease_seconds
    Worker(**get_kwargs(settings_cls), worker_id=WORKER_ID, lease_seconds=lease_seconds).run()


if __name__ == "__main__":
    main(sys.argv)
