"""The processes of a running devserver, found by command line, and the CPU they use.

A benchmark on this 2-core host shares the cores with the API, the Chroma server, Redis,
the workers and itself, so a throughput figure is only readable next to where the CPU
went: `CpuMeter` takes CPU seconds (user + system, all threads) of every process of the
system, of the benchmark process and of the Redis server between two points in time.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psutil
import redis


def _role(process: psutil.Process) -> str | None:
    try:
        line = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "api.main:app" in line:
        return "api"
    if " -m worker" in f"{line} " and "healthcheck" not in line:
        return "worker"
    if "chroma" in line and " run " in f"{line} ":
        return "chroma"
    return None


def devserver_process() -> psutil.Process:
    """The `python -m scripts.devserver` this process started."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if "scripts.devserver" in " ".join(child.cmdline()):
                return child
    raise RuntimeError("no devserver child process found")


def find_processes(devserver_pid: int, workers: int) -> dict[str, psutil.Process]:
    """The devserver's API, worker and Chroma children, named api, worker-1.., chroma."""
    found: dict[str, psutil.Process] = {}
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        found, count = {}, 0
        for child in psutil.Process(devserver_pid).children():
            role = _role(child)
            if role == "worker":
                count += 1
                found[f"worker-{count}"] = child
            elif role:
                found[role] = child
        if "api" in found and count == workers:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"devserver {devserver_pid} children not found: {sorted(found)}")


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of the process and its descendants so far (0 once gone)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = member.cpu_times()
                total += times.user + times.system
    return total


def redis_cpu_seconds(url: str) -> float:
    """The Redis server's own CPU seconds (INFO cpu); shared with whoever else uses it."""
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, float] = client.info("cpu")  # type: ignore[assignment]
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class CpuMeter:
    """CPU seconds used by each named process (plus `bench` and `redis`) since `start()`."""

    processes: dict[str, psutil.Process]
    redis_url: str

    def snapshot(self) -> dict[str, float]:
        values = {name: cpu_seconds(p) for name, p in self.processes.items()}
        values["redis"] = redis_cpu_seconds(self.redis_url)
        values["bench"] = time.process_time()
        return values

    def start(self) -> None:
        self._started = self.snapshot()

    def used(self) -> dict[str, float]:
        now = self.snapshot()
        return {name: now[name] - self._started[name] for name in now}
