"""Helpers shared by the benchmarks: ports, temp dirs, child processes, tables."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def redis_url() -> str:
    """A dedicated Redis database for the benchmarks (flushed before and after each run)."""
    return os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)


def flushdb(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 30.0) -> None:
    """SIGTERM the process we started; SIGKILL its own process group if it does not stop."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the session we created for it
        process.wait(timeout=10)


@contextlib.contextmanager
def spawned(
    argv: Sequence[str], *, env: dict[str, str], log_file: Path, stop_timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own session, output to `log_file`; always stopped at the end."""
    with log_file.open("ab") as output:
        process = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process(process, timeout=stop_timeout)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def migrate(env: dict[str, str]) -> None:
    argv = [str(BIN / "alembic"), "upgrade", "head"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"alembic upgrade head failed:\n{done.stdout}{done.stderr}")


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def command_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    line = shlex.join([str(a) for a in argv])
    return f"{prefix} {line}" if prefix else line


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def wait_http(
    url: str, process: subprocess.Popen[bytes], log_file: Path, *, timeout: float = 120.0
) -> None:
    """Wait until `url` answers 200 (or fail with the server's log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{tail(log_file)}")
        time.sleep(0.2)


def wait_ready(base: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Wait until a devserver's API answers /api/health."""
    wait_http(f"{base}/api/health", process, log_file)
