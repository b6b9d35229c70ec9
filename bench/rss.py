"""`rss`: resident memory (RSS) of the API and of each worker, at rest and under load.

The whole system is started exactly as `make run` does (`python -m scripts.devserver`, its
own DATA_DIR, API port, Chroma server and data dir, Redis database) with WORKERS=2, as in
docker-compose.yml. The devserver's children are found with psutil by their command line
(`uvicorn api.main:app`, `python -m worker`, `chroma run`); a process's RSS is
its own `memory_info().rss` plus that of its descendants, if any. Phases:
1. rest: after startup and one login, the median of SETTLE_S of samples;
2. ingest: BENCH_RSS_PDFS generated PDFs (BENCH_PDF_PAGES pages each, see pdf_ingest) in one
   upload and, at the same time, one text material of BENCH_RSS_TEXT_CHARS characters;
   RSS is sampled every SAMPLE_S until every job has succeeded; the peak is reported;
3. rest again: SETTLE_S after the last job, the median of SETTLE_S of samples (whether
   the memory went back to the allocator / the OS);
4. burst: BENCH_RSS_REQUESTS authenticated GET /api/materials (the full FastAPI route, not the
   job-poll fast path), BENCH_RSS_CONCURRENCY at a time (httpx); the API's peak.

Environment: BENCH_RSS_PDFS (4), BENCH_RSS_TEXT_CHARS (1,500,000), BENCH_RSS_REQUESTS (2000),
BENCH_RSS_CONCURRENCY (50), BENCH_RSS_WORKERS (2), BENCH_REDIS_URL (default
redis://127.0.0.1:6379/9, flushed before and after).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import psutil

from bench.common import command_line, free_port, redis_url, table
from bench.pdf_make import PAGES, make_pdf
from bench.pdf_runs import SERVER_ARGV, running_system
from bench.processes import devserver_process, find_processes

PDFS = int(os.environ.get("BENCH_RSS_PDFS", "4"))
TEXT_CHARS = int(os.environ.get("BENCH_RSS_TEXT_CHARS", "1500000"))
REQUESTS = int(os.environ.get("BENCH_RSS_REQUESTS", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_RSS_CONCURRENCY", "50"))
WORKERS = int(os.environ.get("BENCH_RSS_WORKERS", "2"))
SAMPLE_S = 0.1
SETTLE_S = 3.0
JOB_TIMEOUT_S = 600.0
TARGET_MB = {"api": 200.0, "worker": 400.0}
# docker-compose.yml's deploy.resources.limits.memory of each service.
LIMIT_MB = {"api": 512.0, "worker": 768.0, "chroma": 1024.0}
MB = 1024 * 1024


def rss_mb(process: psutil.Process) -> float:
    """RSS of the process and of all its descendants, in MiB (0 once it is gone)."""
    total = 0
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total / MB


@dataclass
class Sampler:
    """Samples every SAMPLE_S in a thread; `phase(name)` starts collecting under a new name."""

    processes: dict[str, psutil.Process]
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    _phase: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def phase(self, name: str | None) -> None:
        with self._lock:
            self._phase = name
            if name is not None:
                self.samples.setdefault(name, {n: [] for n in self.processes})

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            values = {name: rss_mb(p) for name, p in self.processes.items()}
            with self._lock:
                if self._phase is not None:
                    for name, value in values.items():
                        self.samples[self._phase][name].append(value)
            next_at += SAMPLE_S
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, phase: str, how: Callable[[list[float]], float]) -> dict[str, float]:
        with self._lock:
            return {n: how(v) if v else float("nan") for n, v in self.samples[phase].items()}

    def count(self, phase: str) -> int:
        with self._lock:
            return max((len(v) for v in self.samples[phase].values()), default=0)


def long_text(chars: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["cell", "membrane", "protein", "energy", "the", "of", "and", "is", "a", "enzyme"]
    words += ["mitochondria", "nucleus", "ribosome", "transport", "gradient", "synthesis"]
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize()
        sentence += ". " if rng.random() > 0.1 else ".\n\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:chars]


async def _login(client: httpx.AsyncClient) -> dict[str, str]:
    email, password = f"bench-rss-{time.time_ns()}@example.com", "bench-password-123"
    await client.post("/api/auth/register", json={"email": email, "password": password})
    response = await client.post("/api/auth/login", data={"username": email, "password": password})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _ingest(
    client: httpx.AsyncClient, auth: dict[str, str], pdfs: dict[str, bytes], text: str
) -> tuple[float, dict[str, str]]:
    """Upload the PDFs and the text at once; poll until all jobs succeeded. Returns
    (seconds, job id -> worker)."""
    started = time.monotonic()
    files = [("files", (name, data, "application/pdf")) for name, data in pdfs.items()]
    uploads, text_reply = await asyncio.gather(
        client.post("/api/materials", files=files, headers=auth),
        client.post("/api/materials/text", json={"title": "Long text", "text": text}, headers=auth),
    )
    for reply in (uploads, text_reply):
        if reply.status_code not in {200, 201, 202}:
            raise RuntimeError(f"upload failed: {reply.status_code} {reply.text[:500]}")
    job_ids = [item["job"]["id"] for item in uploads.json()["items"]]
    job_ids.append(text_reply.json()["job"]["id"])
    if len(job_ids) != len(pdfs) + 1:
        raise RuntimeError(f"upload rejected files: {uploads.json().get('rejected')}")
    pending, workers = set(job_ids), {}
    while pending:
        for job_id in sorted(pending):
            reply = await client.get(f"/api/jobs/{job_id}", headers=auth)
            reply.raise_for_status()
            job = reply.json()
            if job["status"] in {"failed", "cancelled"}:
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            if job["status"] == "succeeded":
                pending.discard(job_id)
                workers[job_id] = job.get("worker") or "?"
        if time.monotonic() - started > JOB_TIMEOUT_S:
            raise TimeoutError(f"jobs not done after {JOB_TIMEOUT_S:.0f}s: {sorted(pending)}")
        await asyncio.sleep(0.25)
    return time.monotonic() - started, workers


async def _burst(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[float, int]:
    """REQUESTS GET /api/materials, CONCURRENCY at a time; (seconds, non-200 replies)."""
    remaining = iter(range(REQUESTS))
    errors = 0

    async def one_connection() -> None:
        nonlocal errors
        for _ in remaining:
            reply = await client.get("/api/materials", headers=auth)
            errors += reply.status_code != 200

    started = time.monotonic()
    await asyncio.gather(*(one_connection() for _ in range(CONCURRENCY)))
    return time.monotonic() - started, errors


@dataclass
class Run:
    names: list[str]
    rest: dict[str, float]
    ingest: dict[str, float]
    after: dict[str, float]
    burst: dict[str, float]
    ingest_s: float
    ingest_samples: int
    jobs_per_worker: list[int]
    burst_s: float
    burst_errors: int
    env: dict[str, str]


async def _measure(base: str, processes: dict[str, psutil.Process]) -> Run:
    pdfs = {f"rss-{seed}.pdf": make_pdf(seed) for seed in range(201, 201 + PDFS)}
    text = long_text(TEXT_CHARS)
    sampler = Sampler(processes)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            auth = await _login(client)
            await client.get("/api/materials", headers=auth)
            await asyncio.sleep(SETTLE_S)
            sampler.phase("rest")
            await asyncio.sleep(SETTLE_S)
            sampler.phase("ingest")
            ingest_s, job_workers = await _ingest(client, auth, pdfs, text)
            sampler.phase(None)
            await asyncio.sleep(SETTLE_S)
            sampler.phase("after")
            await asyncio.sleep(SETTLE_S)
            sampler.phase("burst")
            burst_s, errors = await _burst(client, auth)
            sampler.phase(None)
    finally:
        sampler.close()
    per_worker: dict[str, int] = {}
    for worker in job_workers.values():
        per_worker[worker] = per_worker.get(worker, 0) + 1
    return Run(
        names=list(processes),
        rest=sampler.summary("rest", statistics.median),
        ingest=sampler.summary("ingest", max),
        after=sampler.summary("after", statistics.median),
        burst=sampler.summary("burst", max),
        ingest_s=ingest_s,
        ingest_samples=sampler.count("ingest"),
        jobs_per_worker=sorted(per_worker.values(), reverse=True),
        burst_s=burst_s,
        burst_errors=errors,
        env={},
    )


def run_once() -> Run:
    data_dir = tempfile.mkdtemp(prefix="brainwave-bench-rss-")
    env_vars = {
        "DATA_DIR": data_dir,
        "REDIS_URL": redis_url(),
        "CHROMA_URL": f"http://127.0.0.1:{free_port()}",
        "API_PORT": str(free_port()),
        "WORKERS": str(WORKERS),
    }
    with running_system(env_vars) as base:
        processes = find_processes(devserver_process().pid, WORKERS)
        result = asyncio.run(_measure(base, processes))
    result.env = {**env_vars, "DATA_DIR": "$TMPDIR"}
    return result


def main() -> None:
    load_before = os.getloadavg()[0]
    run = run_once()
    load_after = os.getloadavg()[0]
    print("== rss: resident memory of the API and the workers (MiB, incl. child processes) ==")
    print(f"system:  {command_line(SERVER_ARGV, run.env)}")
    print(
        f"ingest:  {PDFS} PDFs of {PAGES} pages in one upload + a {TEXT_CHARS:,}-char text "
        f"material at the same time; {run.ingest_s:.1f}s until all succeeded, jobs per "
        f"worker {'/'.join(map(str, run.jobs_per_worker))}, {run.ingest_samples} samples "
        f"every {SAMPLE_S * 1000:.0f} ms"
    )
    print(
        f"burst:   {REQUESTS} GET /api/materials, {CONCURRENCY} concurrent (httpx): "
        f"{run.burst_s:.1f}s, {REQUESTS / run.burst_s:.0f} req/s, {run.burst_errors} non-200"
    )
    print(
        f"host:    {os.cpu_count()} CPUs; 1-min load average before / after: "
        f"{load_before:.1f} / {load_after:.1f}"
    )
    print(f"rest:    median of {SETTLE_S:.0f}s of samples, {SETTLE_S:.0f}s after the phase before")
    print()
    rows: list[list[object]] = []
    for name in run.names:
        role = name.split("-")[0]
        peak = max(run.ingest[name], run.burst[name])
        target = TARGET_MB.get(role)
        limit = LIMIT_MB.get(role)
        rows.append(
            [
                name,
                f"{run.rest[name]:.0f}",
                f"{run.ingest[name]:.0f}",
                f"{run.after[name]:.0f}",
                f"{run.burst[name]:.0f}",
                f"{peak:.0f}",
                f"<= {target:.0f}" if target else "-",
                ("yes" if peak <= target else "NO") if target else "-",
                f"{limit:.0f} ({limit - peak:.0f})" if limit else "-",
            ]
        )
    headers = ["process", "rest", "ingest peak", "rest after", "burst peak", "peak", "target"]
    print(table([*headers, "met", "compose limit (headroom)"], rows))
    sys.stdout.flush()
