"""The runs of `pdf_ingest`: a system started as `make run` does, uploads polled to the end.

See bench/pdf_ingest.py for what is measured and reported.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from bench.common import flushdb, free_port, redis_url, spawned, wait_ready
from bench.pdf_make import make_pdf
from bench.processes import CpuMeter, devserver_process, find_processes
from shared.config import Settings

REPEATS = int(os.environ.get("BENCH_PDF_REPEATS", "3"))
BATCH = int(os.environ.get("BENCH_PDF_BATCH", "6"))
ROUNDS = int(os.environ.get("BENCH_PDF_ROUNDS", "3"))
MAX_JOBS = os.environ.get("BENCH_PDF_MAX_JOBS", "")
BATCH_POLL_S = float(os.environ.get("BENCH_PDF_BATCH_POLL_MS", "200")) / 1000
WORKER_COUNTS = (1, 2)
POLL_S = 0.05
WARM_UP_PAGES, WARM_UP_ATTEMPTS = 5, 8
WORKER_DEFAULT_MAX_JOBS = Settings().worker_max_jobs
JOB_TIMEOUT_S = 600.0
SERVER_ARGV = [sys.executable, "-m", "scripts.devserver"]
STAGES = ("upload", "queued", "starting", "extracting", "chunking", "embedding", "ready")
SINGLE_SEEDS = tuple(range(1, REPEATS + 1))
BATCH_SEEDS = tuple(range(101, 101 + BATCH))


@dataclass
class Timeline:
    """What the polls of one job saw: monotonic seconds since the upload request started."""

    uploaded_at: float
    started_wall: float
    """`time.time()` when the upload request started."""
    first_seen: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None
    done_at: float | None = None
    finished_s: float | None = None
    """Seconds from the upload request to the job's own `finished_at` (not poll-bound)."""
    worker: str | None = None

    def observe(self, at: float, job: dict) -> None:
        status, stage = job["status"], job["stage"] or ""
        if status in {"failed", "cancelled"}:
            raise RuntimeError(f"job {job['id']} {status} at stage {stage!r}: {job['error']}")
        self.worker = job.get("worker") or self.worker
        if status == "queued":
            label = "queued"
        elif status == "succeeded":
            label = "done"
        else:
            label = next((s for s in STAGES[2:] if stage.startswith(s)), f"other:{stage}")
        self.first_seen.setdefault(label, at)
        if self.ready_at is None and label in {"ready", "done"}:
            self.ready_at = at
        if label == "done":
            self.done_at = at
            finished = datetime.fromisoformat(job["finished_at"]).timestamp()
            self.finished_s = finished - self.started_wall

    def queue_seconds(self) -> float:
        return self.stage_seconds().get("queued", 0.0)

    def stage_seconds(self) -> dict[str, float]:
        """Per stage label: first poll showing it until the first poll showing the next."""
        marks = {**self.first_seen, "upload": 0.0, "queued": self.uploaded_at}
        seen = sorted(marks.items(), key=lambda item: item[1])
        return {
            label: later - at
            for (label, at), (_, later) in itertools.pairwise(seen)
            if label != "done"
        }


def _login(client: httpx.Client) -> dict[str, str]:
    email, password = f"bench-pdf-{time.time_ns()}@example.com", "bench-password-123"
    client.post("/api/auth/register", json={"email": email, "password": password})
    response = client.post("/api/auth/login", data={"username": email, "password": password})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ingest(
    client: httpx.Client, auth: dict[str, str], pdfs: dict[str, bytes], poll_s: float = POLL_S
) -> list[Timeline]:
    """Upload all `pdfs` in one request and poll their jobs every `poll_s` until all succeed."""
    files = [("files", (name, data, "application/pdf")) for name, data in pdfs.items()]
    started, started_wall = time.monotonic(), time.time()
    response = client.post("/api/materials", files=files, headers=auth)
    if response.status_code != 202:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
    uploaded_at = time.monotonic() - started
    job_ids = [item["job"]["id"] for item in response.json()["items"]]
    if len(job_ids) != len(pdfs):
        raise RuntimeError(f"upload rejected files: {response.json()['rejected']}")
    timelines = {job_id: Timeline(uploaded_at, started_wall) for job_id in job_ids}
    pending = set(job_ids)
    next_poll = time.monotonic()
    while pending:
        for job_id in sorted(pending):
            reply = client.get(f"/api/jobs/{job_id}", headers=auth)
            reply.raise_for_status()
            timelines[job_id].observe(time.monotonic() - started, reply.json())
            if timelines[job_id].done_at is not None:
                pending.discard(job_id)
        if time.monotonic() - started > JOB_TIMEOUT_S:
            raise TimeoutError(f"jobs not done after {JOB_TIMEOUT_S:.0f}s: {sorted(pending)}")
        next_poll += poll_s
        time.sleep(max(0.0, next_poll - time.monotonic()))
    return [timelines[job_id] for job_id in job_ids]


@contextlib.contextmanager
def running_system(env_vars: dict[str, str]) -> Iterator[str]:
    """`python -m scripts.devserver` with `env_vars`; SIGTERMed and cleaned up at the end."""
    data_dir = Path(env_vars["DATA_DIR"])
    env = {**os.environ, **env_vars, "PYTHONUNBUFFERED": "1"}
    log_file = data_dir / "devserver.log"
    base = f"http://127.0.0.1:{env_vars['API_PORT']}"
    try:
        flushdb(env_vars["REDIS_URL"])
        with spawned(SERVER_ARGV, env=env, log_file=log_file, stop_timeout=45) as server:
            wait_ready(base, server, log_file)
            yield base
            if server.poll() is not None:
                raise RuntimeError(f"devserver died during the run (log {log_file})")
    finally:
        flushdb(env_vars["REDIS_URL"])
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Batch:
    """One batch upload on one system: how long it took, who ran what, where the CPU went."""

    workers: int
    round_no: int
    timelines: list[Timeline]
    seconds: float
    cpu: dict[str, float]
    """CPU seconds during the batch per process: worker-1.., api, chroma, redis, bench."""
    split: dict[str, int]
    """Jobs per worker process (worker-1..), from the `worker` field of each job."""

    @property
    def docs_per_min(self) -> float:
        return 60.0 * len(self.timelines) / self.seconds


@dataclass
class Run:
    """One system start: the single uploads, then the batch."""

    singles: list[Timeline]
    batch: Batch
    env: dict[str, str]


def _system_env(workers: int) -> dict[str, str]:
    env = {
        "DATA_DIR": tempfile.mkdtemp(prefix=f"brainwave-bench-pdf-w{workers}-"),
        "REDIS_URL": redis_url(),
        "CHROMA_URL": f"http://127.0.0.1:{free_port()}",
        "API_PORT": str(free_port()),
        "WORKERS": str(workers),
    }
    if MAX_JOBS:
        env["WORKER_MAX_JOBS"] = MAX_JOBS
    return env


def warm_up(
    client: httpx.Client, auth: dict[str, str], processes: dict[str, psutil.Process]
) -> None:
    """Have every worker process run a PDF job before anything is measured.

    A worker pays its lazy start-up costs (pypdf's import, the Chroma connection) in its
    first PDF job; whichever worker polled first took the single uploads, so without this
    the other one paid them inside the timed batch. Uploads of max_jobs + 1 small PDFs
    until every worker has run one (arq lets one worker take up to max_jobs at a time).
    """
    workers = {str(p.pid) for name, p in processes.items() if name.startswith("worker")}
    seen: set[str] = set()
    for attempt in range(WARM_UP_ATTEMPTS):
        files = {
            f"warm-{attempt}-{n}.pdf": make_pdf(900 + n, pages=WARM_UP_PAGES)
            for n in range(int(MAX_JOBS or WORKER_DEFAULT_MAX_JOBS) + 1)
        }
        timelines = ingest(client, auth, files, poll_s=BATCH_POLL_S)
        seen |= {(t.worker or "?").rpartition(":")[2] for t in timelines}
        if workers <= seen:
            return
    raise RuntimeError(f"workers {sorted(workers - seen)} ran no warm-up job")


def _split(timelines: list[Timeline], processes: dict[str, psutil.Process]) -> dict[str, int]:
    """Jobs per worker process; a job's `worker` is `host:pid`."""
    names = {str(p.pid): name for name, p in processes.items() if name.startswith("worker")}
    split = dict.fromkeys(sorted(names.values()), 0)
    for timeline in timelines:
        name = names.get((timeline.worker or "?").rpartition(":")[2], "?")
        split[name] = split.get(name, 0) + 1
    return split


def run_once(workers: int, round_no: int, pdfs: dict[int, bytes]) -> Run:
    env_vars = _system_env(workers)
    with (
        running_system(env_vars) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        auth = _login(client)
        processes = find_processes(devserver_process().pid, workers)
        warm_up(client, auth, processes)
        singles = [
            ingest(client, auth, {f"single-{seed}.pdf": pdfs[seed]})[0] for seed in SINGLE_SEEDS
        ]
        meter = CpuMeter(processes, env_vars["REDIS_URL"])
        meter.start()
        files = {f"batch-{seed}.pdf": pdfs[seed] for seed in BATCH_SEEDS}
        timelines = ingest(client, auth, files, poll_s=BATCH_POLL_S)
        cpu = meter.used()
    seconds = max(t.finished_s or t.done_at or 0.0 for t in timelines)
    batch = Batch(workers, round_no, timelines, seconds, cpu, _split(timelines, processes))
    return Run(singles, batch, {**env_vars, "DATA_DIR": "$TMPDIR"})


def run_all(pdfs: dict[int, bytes]) -> tuple[list[Run], list[float]]:
    """ROUNDS rounds of one run per worker count; the 1-minute load average after each."""
    runs: list[Run] = []
    loads = [os.getloadavg()[0]]
    for round_no in range(1, ROUNDS + 1):
        for workers in WORKER_COUNTS:  # alternated, so a change in the host's load hits both
            runs.append(run_once(workers, round_no, pdfs))
            loads.append(os.getloadavg()[0])
    return runs, loads
