"""`job_lifecycle`: no-op jobs/s through our lifecycle wrapper vs raw arq, same worker settings.

A temp DATA_DIR is migrated with `alembic upgrade head`. Per case the Redis database is
flushed, N jobs are enqueued *before* the worker starts, then one worker process with the
settings class `bench.lifecycle_worker.BenchWorkerSettings` is started; the clock runs
from the end of its on_startup (it writes a timestamp to Redis) until
- wrapper: the last of the N job rows is `succeeded` (the rows are created first with
  shared.jobs.service.create_job, for a fresh user, and enqueued with their id as arq id);
- arq, raw: arq's queue is empty (arq removes a job from it only once it has finished).
Both are polled every POLL_S. The cases, alternated ROUNDS times per profile:
- arq: a raw no-op function run by stock arq (its CLI, `arq <settings>`): the baseline;
- raw: the same raw function run by our worker (`python -m worker <settings>`: arq with
  our start loop, worker/scheduler.py), i.e. what the scheduler alone changes;
- wrapper: a no-op handler through our lifecycle wrapper, run by our worker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import redis
from arq.connections import RedisSettings, create_pool

from bench.common import (
    BIN,
    command_line,
    flushdb,
    median,
    migrate,
    redis_url,
    spawned,
    table,
    tail,
)
from bench.lifecycle_worker import RAW_KIND, READY_KEY, WRAPPED_KIND, profile_settings
from shared.auth.models import User
from shared.config import Settings
from shared.db import Database
from shared.ids import new_id
from shared.jobs.service import create_job, discard_pending

JOBS = int(os.environ.get("BENCH_JOBS", "500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PROFILES = tuple(os.environ.get("BENCH_PROFILES", "default,tuned").split(","))
POLL_S = 0.005
TIMEOUT_S = 300.0
TARGET_RATIO, TARGET_TUNED_RATE = 0.7, 1000.0
SETTINGS_CLASS = "bench.lifecycle_worker.BenchWorkerSettings"
WORKER_ARGV = {
    "arq": [str(BIN / "arq"), SETTINGS_CLASS],
    "raw": [str(BIN / "python"), "-m", "worker", SETTINGS_CLASS],
    "wrapper": [str(BIN / "python"), "-m", "worker", SETTINGS_CLASS],
}
CASES = tuple(WORKER_ARGV)


async def _create_rows(settings: Settings, n: int) -> tuple[str, list[str]]:
    db = Database(settings)
    try:
        async with db.session() as session:
            user = User(email=f"bench-{new_id()}@example.com", password_hash="-")
            session.add(user)
            await session.flush()
            jobs = [create_job(session, user.id, WRAPPED_KIND, {}) for _ in range(n)]
            discard_pending(session)  # we enqueue them ourselves, below
        return user.id, [job.id for job in jobs]
    finally:
        await db.dispose()


async def _enqueue(settings: Settings, kind: str, ids: list[str] | None, n: int) -> None:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.queue_name
    )
    try:
        if ids is None:
            for _ in range(n):
                await pool.enqueue_job(kind)
        else:
            for job_id in ids:
                await pool.enqueue_job(kind, job_id, _job_id=job_id)
        queued = await pool.zcard(settings.queue_name)
        if queued != n:
            raise RuntimeError(f"expected {n} queued jobs, found {queued}")
    finally:
        await pool.aclose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_case(
    settings: Settings, env: dict[str, str], case: str, log_file: Path
) -> tuple[float, float]:
    """Seconds the worker needed for JOBS jobs of `case` (one of CASES), and the CPU
    seconds it used meanwhile (its imports and startup left out)."""
    flushdb(settings.redis_url)
    user_id = None
    if case == "wrapper":
        user_id, ids = asyncio.run(_create_rows(settings, JOBS))
        asyncio.run(_enqueue(settings, WRAPPED_KIND, ids, JOBS))
    else:
        asyncio.run(_enqueue(settings, RAW_KIND, None, JOBS))
    client = redis.Redis.from_url(settings.redis_url)
    db_path = settings.resolved_database_url.split("///", 1)[1]
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        with spawned(WORKER_ARGV[case], env=env, log_file=log_file) as worker:
            deadline = time.monotonic() + TIMEOUT_S
            while (ready := client.get(READY_KEY)) is None:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bench worker did not start:\n{tail(log_file)}")
                time.sleep(POLL_S)
            started = float(str(ready, "ascii"))  # type: ignore[arg-type]
            cpu_at_start = _cpu_seconds(worker.pid)
            while True:
                if case == "wrapper":
                    done = db.execute(
                        "SELECT count(*) FROM jobs WHERE user_id = ? AND status = 'succeeded'",
                        (user_id,),
                    ).fetchone()[0]
                    finished = done == JOBS
                else:
                    finished = client.zcard(settings.queue_name) == 0
                if finished:
                    seconds = time.time() - started
                    cpu = _cpu_seconds(worker.pid) - cpu_at_start
                    break
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{case} jobs did not finish:\n{tail(log_file)}")
                time.sleep(POLL_S)
        if case == "wrapper":
            other = db.execute(
                "SELECT status, count(*) FROM jobs WHERE user_id = ? GROUP BY status", (user_id,)
            ).fetchall()
            if other != [("succeeded", JOBS)]:
                raise RuntimeError(f"unexpected job states: {other}")
        return seconds, cpu
    finally:
        db.close()
        client.close()


def main() -> None:
    url = redis_url()
    data_dir = Path(tempfile.mkdtemp(prefix="brainwave-bench-lifecycle-"))
    base_env = {"DATA_DIR": str(data_dir), "REDIS_URL": url, "CHROMA_URL": "http://127.0.0.1:9"}
    settings = Settings(data_dir=data_dir, redis_url=url)
    rows: list[list[object]] = []
    summary: list[list[object]] = []
    try:
        migrate({**os.environ, **base_env})
        for profile in PROFILES:
            env = {**os.environ, **base_env, "BENCH_PROFILE": profile, "PYTHONUNBUFFERED": "1"}
            rates: dict[str, list[float]] = {case: [] for case in CASES}
            cpu_ms: dict[str, list[float]] = {case: [] for case in CASES}
            for round_no in range(1, ROUNDS + 1):
                for case in CASES:
                    log_file = data_dir / f"worker-{profile}-{case}-{round_no}.log"
                    seconds, cpu = _run_case(settings, env, case, log_file)
                    rates[case].append(JOBS / seconds)
                    cpu_ms[case].append(1000 * cpu / JOBS)
                    rows.append(
                        [profile, round_no, case, JOBS, seconds, JOBS / seconds, 1000 * cpu / JOBS]
                    )
            arq, raw, wrapped = (median(rates[case]) for case in CASES)
            cpu_text = " / ".join(f"{median(cpu_ms[case]):.2f}" for case in CASES)
            ratios = [f"{wrapped / arq:.2f}", f"{wrapped / raw:.2f}"]
            summary.append([profile, arq, raw, wrapped, *ratios, cpu_text])
    finally:
        flushdb(url)
        shutil.rmtree(data_dir, ignore_errors=True)

    print("== job_lifecycle: no-op jobs/s, lifecycle wrapper vs raw arq (one worker process) ==")
    migrate_line = command_line([str(BIN / "alembic"), "upgrade", "head"], base_env)
    print("migrate: " + migrate_line.replace(str(data_dir), "$TMPDIR"))
    worker_env = {**base_env, "BENCH_PROFILE": "default|tuned"}
    for case, argv in WORKER_ARGV.items():
        line = command_line(argv, worker_env).replace(str(data_dir), "$TMPDIR")
        print(f"{case + ':':8s} {line}")
    for profile in PROFILES:
        shown = {k: v for k, v in profile_settings(profile).items() if k != "queue_name"}
        if shown["queue_read_limit"] is None:  # arq's default
            shown["queue_read_limit"] = f"None (arq: {max(shown['max_jobs'] * 5, 100)})"
        print(f"{profile:8s} " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    print()
    print(table(["profile", "round", "case", "jobs", "seconds", "jobs/s", "CPU ms/job"], rows))
    print()
    headers = ["profile", "jobs/s: arq", "raw", "wrapper", "wrapper/arq", "wrapper/raw"]
    print(table([*headers, "CPU ms/job: arq / raw / wrapper"], summary))
    print("(medians; CPU: the worker process, all threads, from the end of its startup)")
    print(
        f"targets: wrapper/arq >= {TARGET_RATIO}; tuned wrapper >= {TARGET_TUNED_RATE:,.0f} jobs/s"
    )
