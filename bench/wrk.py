"""`wrk`, the load generator of the HTTP benchmarks: its settings and its report, parsed.

Settings from the environment: BENCH_WRK_THREADS (2), BENCH_CONNECTIONS (32),
BENCH_DURATION (seconds per measured run, 10).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence

THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
DURATION_S = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP_S = 2

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def argv(
    url: str, duration: int, *, headers: Sequence[str] = (), script: str | None = None
) -> list[str]:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", script]
    return [*command, url]


def run(command: list[str]) -> dict[str, float]:
    """Run wrk; its requests/s and count, p50/p99 in ms, non-2xx answers and socket errors."""
    return parse(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def parse(report: str) -> dict[str, float]:
    result: dict[str, float] = {"non_2xx": 0.0, "errors": 0.0}
    result["requests_per_s"] = float(_group(r"Requests/sec:\s*([\d.]+)", report))
    result["requests"] = float(_group(r"(\d+) requests in", report))
    for percent, key in (("50", "p50_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\b", report, re.MULTILINE)
        result[key] = float(match.group(1)) * _UNITS_MS[match.group(2)] if match else float("nan")
    if match := re.search(r"Non-2xx or 3xx responses:\s*(\d+)", report):
        result["non_2xx"] = float(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    ):
        result["errors"] = float(sum(int(g) for g in match.groups()))
    return result


def _group(pattern: str, report: str) -> str:
    match = re.search(pattern, report)
    if match is None:
        raise RuntimeError(f"unexpected wrk report:\n{report}")
    return match.group(1)
