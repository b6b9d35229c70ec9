"""`job_poll`: authenticated GET /api/jobs/{id} vs GET /api/health, requests/s.

Starts the whole system exactly as `make run` does (`python -m scripts.devserver`) with its
own DATA_DIR, API port, Chroma port and Redis database, WORKERS=1; registers a user, creates
a text material and polls its job. Load comes from `wrk` in its own process (or, without
wrk, bench/loadgen.py). The two endpoints alternate; the median of each is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import wrk
from bench.common import (
    command_line,
    flushdb,
    free_port,
    median,
    redis_url,
    spawned,
    table,
    tail,
    wait_ready,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TARGET_RATIO = 0.5


def load_argv(url: str, token: str | None, duration: int) -> list[str]:
    headers = [f"Authorization: Bearer {token}"] if token else []
    if shutil.which("wrk"):
        return wrk.argv(url, duration, headers=headers)
    argv = [sys.executable, "-m", "bench.loadgen", url]
    argv += ["--duration", str(duration), "--connections", str(wrk.CONNECTIONS)]
    for header in headers:
        argv += ["-H", header]
    return argv


def run_load(url: str, token: str | None, duration: int) -> dict[str, float]:
    argv = load_argv(url, token, duration)
    if argv[0] == "wrk":
        return wrk.run(argv)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    loaded: dict[str, float] = json.loads(out)
    return loaded


def _login(base: str) -> tuple[str, str, str]:
    """Register, log in and create a text material; return (token, job id, job status)."""
    email, password = f"bench-{time.time_ns()}@example.com", "bench-password-123"
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/auth/register", json={"email": email, "password": password})
        response = client.post("/api/auth/login", data={"username": email, "password": password})
        response.raise_for_status()
        token = response.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        text = "Photosynthesis turns light into chemical energy in chloroplasts. " * 20
        response = client.post(
            "/api/materials/text", json={"title": "Bench note", "text": text}, headers=auth
        )
        response.raise_for_status()
        job_id = response.json()["job"]["id"]
        deadline, status = time.monotonic() + 60, "queued"
        while time.monotonic() < deadline:  # poll a settled job, with the worker idle
            response = client.get(f"/api/jobs/{job_id}", headers=auth)
            response.raise_for_status()
            status = response.json()["status"]
            if status in {"succeeded", "failed", "cancelled"}:
                break
            time.sleep(0.2)
    return token, job_id, status


def main() -> None:
    url = redis_url()
    api_port, chroma_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="brainwave-bench-poll-"))
    env_vars = {
        "DATA_DIR": str(data_dir),
        "REDIS_URL": url,
        "CHROMA_URL": f"http://127.0.0.1:{chroma_port}",
        "API_PORT": str(api_port),
        "WORKERS": "1",
    }
    env = {**os.environ, **env_vars, "PYTHONUNBUFFERED": "1"}
    server_argv = [sys.executable, "-m", "scripts.devserver"]
    base = f"http://127.0.0.1:{api_port}"
    log_file = data_dir / "devserver.log"
    flushdb(url)
    try:
        with spawned(server_argv, env=env, log_file=log_file, stop_timeout=45) as server:
            wait_ready(base, server, log_file)
            token, job_id, job_status = _login(base)
            endpoints = {
                "health": (f"{base}/api/health", None),
                "job_poll": (f"{base}/api/jobs/{job_id}", token),
            }
            for target, auth in endpoints.values():  # warm-up, not reported
                run_load(target, auth, wrk.WARMUP_S)
            rows: list[list[object]] = []
            rates: dict[str, list[float]] = {name: [] for name in endpoints}
            for round_no in range(1, ROUNDS + 1):
                for name, (target, auth) in endpoints.items():
                    r = run_load(target, auth, wrk.DURATION_S)
                    if r["non_2xx"] or r["errors"]:
                        print(
                            f"warning: {name}: {r['non_2xx']:.0f} non-2xx, {r['errors']:.0f} errors"
                        )
                    rates[name].append(r["requests_per_s"])
                    rows.append(
                        [
                            round_no,
                            name,
                            r["requests_per_s"],
                            r["p50_ms"],
                            r["p99_ms"],
                            int(r["non_2xx"] + r["errors"]),
                        ]
                    )
            if server.poll() is not None:
                raise RuntimeError(f"devserver died during the run:\n{tail(log_file)}")
    finally:
        flushdb(url)
        shutil.rmtree(data_dir, ignore_errors=True)

    health, poll = median(rates["health"]), median(rates["job_poll"])
    ratio = poll / health
    print("== job_poll: GET /api/jobs/{id} (Bearer JWT) vs GET /api/health ==")
    print("system:  " + command_line(server_argv, env_vars).replace(str(data_dir), "$TMPDIR"))
    print(f"job:     {job_id} (status {job_status} while polled)")
    for name, (target, auth) in endpoints.items():
        shown = load_argv(target, "$TOKEN" if auth else None, wrk.DURATION_S)
        print(f"load {name}: {command_line(shown)}")
    print()
    print(table(["round", "endpoint", "req/s", "p50 ms", "p99 ms", "errors"], rows))
    print()
    print(
        table(
            ["median health req/s", "median job_poll req/s", "ratio poll/health", "target"],
            [[health, poll, f"{ratio:.2f}", f">= {TARGET_RATIO}"]],
        )
    )
