"""`job_create`: the job-creating `POST /api/materials/text` vs a bare enqueue, requests/s.

The text-material POST is what a learner does most to start a job (a note to study), and
the lightest such route open to every user: it checks the Bearer JWT and the upload rate
limit, inserts the material, writes its text file, inserts the job, commits, stores the
job's snapshot and enqueues it. (`POST /api/admin/backups` only inserts a job but is for
administrators; the other job routes read materials first.) The baseline is
`bench/enqueue_app.py`: one FastAPI route that only does `await redis.enqueue_job(...)`.

Both run as `uvicorn <app> --host 127.0.0.1 --port …` (one process each, same temp
DATA_DIR and Redis database, no worker: the jobs stay queued), loaded in turn by `wrk`
(POST via a Lua script; 2 threads, BENCH_CONNECTIONS connections, BENCH_DURATION s).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import wrk
from bench.common import (
    BIN,
    command_line,
    flushdb,
    free_port,
    median,
    migrate,
    redis_url,
    spawned,
    table,
    tail,
    wait_http,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGET_RATIO = 0.8
NOTE = "Photosynthesis turns light into chemical energy in chloroplasts. " * 4

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
{auth}"""


def _token(base: str) -> str:
    email, password = f"bench-{time.time_ns()}@example.com", "bench-password-123"
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/auth/register", json={"email": email, "password": password})
        response = client.post("/api/auth/login", data={"username": email, "password": password})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        check = client.post(
            "/api/materials/text",
            json={"title": "Bench note", "text": NOTE},
            headers={"Authorization": f"Bearer {token}"},
        )
        if check.status_code != 202:
            raise RuntimeError(f"POST /api/materials/text: {check.status_code} {check.text}")
    return token


def _post(url: str, script: Path, duration: int) -> dict[str, float]:
    return wrk.run(wrk.argv(url, duration, script=str(script)))


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("job_create needs wrk")
    url = redis_url()
    data_dir = Path(tempfile.mkdtemp(prefix="brainwave-bench-create-"))
    api_port, raw_port = free_port(), free_port()
    limits = {"RATE_LIMIT_UPLOADS_USER": "100000000/hour"}
    env_vars = {"DATA_DIR": str(data_dir), "REDIS_URL": url, "CHROMA_URL": "http://127.0.0.1:9"}
    env = {**os.environ, **env_vars, **limits, "PYTHONUNBUFFERED": "1"}
    uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--log-level", "warning"]
    api_argv = [*uvicorn, "api.main:app", "--port", str(api_port)]
    raw_argv = [*uvicorn, "bench.enqueue_app:app", "--port", str(raw_port)]
    rows: list[list[object]] = []
    rates: dict[str, list[float]] = {"enqueue only": [], "POST /api/materials/text": []}
    flushdb(url)
    try:
        migrate(env)
        with (
            spawned(api_argv, env=env, log_file=data_dir / "api.log") as api,
            spawned(raw_argv, env=env, log_file=data_dir / "raw.log") as raw,
        ):
            wait_http(f"http://127.0.0.1:{api_port}/api/health", api, data_dir / "api.log")
            wait_http(f"http://127.0.0.1:{raw_port}/docs", raw, data_dir / "raw.log")
            token = _token(f"http://127.0.0.1:{api_port}")
            body = json.dumps({"title": "Bench note", "text": NOTE})
            scripts = {
                "enqueue only": data_dir / "raw.lua",
                "POST /api/materials/text": data_dir / "api.lua",
            }
            scripts["enqueue only"].write_text(LUA.format(body='"{}"', auth=""))
            auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            scripts["POST /api/materials/text"].write_text(
                LUA.format(body=json.dumps(body), auth=auth)
            )
            targets = {
                "enqueue only": f"http://127.0.0.1:{raw_port}/enqueue",
                "POST /api/materials/text": f"http://127.0.0.1:{api_port}/api/materials/text",
            }
            for name, target in targets.items():
                _post(target, scripts[name], wrk.WARMUP_S)
            for round_no in range(1, ROUNDS + 1):
                for name, target in targets.items():
                    r = _post(target, scripts[name], wrk.DURATION_S)
                    rates[name].append(r["requests_per_s"])
                    rows.append(
                        [round_no, name, r["requests_per_s"], r["p50_ms"], int(r["non_2xx"])]
                    )
            for process, log in ((api, "api.log"), (raw, "raw.log")):
                if process.poll() is not None:
                    raise RuntimeError(f"a server died:\n{tail(data_dir / log)}")
    finally:
        flushdb(url)
        shutil.rmtree(data_dir, ignore_errors=True)

    raw_rate, api_rate = median(rates["enqueue only"]), median(rates["POST /api/materials/text"])
    print("== job_create: POST /api/materials/text (JWT, ~260-char note) vs enqueue-only ==")
    for argv in (api_argv, raw_argv):
        shown = command_line(argv, {**env_vars, **limits}).replace(str(data_dir), "$TMPDIR")
        print("server: " + shown)
    load = wrk.argv("URL", wrk.DURATION_S, script="<POST script>")
    print(f"load:   {' '.join(load)}")
    print()
    print(table(["round", "endpoint", "req/s", "p50 ms", "non-2xx"], rows))
    print()
    print(
        table(
            ["median enqueue req/s", "median POST req/s", "ratio POST/enqueue", "target"],
            [[raw_rate, api_rate, f"{api_rate / raw_rate:.2f}", f">= {TARGET_RATIO}"]],
        )
    )
    sys.stdout.flush()
