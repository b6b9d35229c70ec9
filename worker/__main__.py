"""`python -m worker [settings class]`: run a worker (default `worker.main.WorkerSettings`).

The same as arq's CLI (`arq worker.main.WorkerSettings`: arq's logging setup, the settings
class read the same way, SIGINT/SIGTERM handled by the worker), except that it runs our
`worker.scheduler.Worker`: arq's CLI cannot choose the worker class.
"""

from __future__ import annotations

import logging.config
import sys

from arq.logs import default_log_config
from arq.typing import WorkerSettingsType
from arq.utils import import_string
from arq.worker import get_kwargs

from shared.config import get_settings
from worker.lifecycle import WORKER_ID
from worker.scheduler import Worker


def main(argv: list[str]) -> None:
    settings_path = argv[1] if len(argv) > 1 else "worker.main.WorkerSettings"
    settings_cls: WorkerSettingsType = import_string(settings_path)
    logging.config.dictConfig(default_log_config(verbose=False))
    lease_seconds = get_settings().job_lease_seconds
    Worker(**get_kwargs(settings_cls), worker_id=WORKER_ID, lease_seconds=lease_seconds).run()


if __name__ == "__main__":
    main(sys.argv)
