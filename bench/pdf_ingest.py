"""`pdf_ingest`: seconds from upload to `ready` for a 100-page text PDF, and worker scaling.

For WORKERS=1 and then WORKERS=2 the whole system is started exactly as `make run` does
(`python -m scripts.devserver`, its own DATA_DIR, API port, Chroma port and Redis database).
A user registers and logs in, then:
1. single: REPEATS times, one generated PDF (PAGES pages of ~WORDS_PER_PAGE words of seeded
   pseudo-English, a heading per page) is uploaded with POST /api/materials and its job is
   polled every POLL_S. Reported: seconds from the upload request to the first poll that
   shows stage `ready` (or status `succeeded`), and per stage the time from the first poll
   showing it to the first poll showing the next one (upload = the request itself, queued =
   until the status leaves `queued`). The median over the repeats is reported.
2. batch: BATCH different PDFs in one request; seconds until every job has succeeded give
   docs/minute. The ratio docs/min(2 workers) / docs/min(1 worker) is the scaling figure.

Environment: BENCH_PDF_PAGES (100), BENCH_PDF_WORDS (400 per page), BENCH_PDF_REPEATS (3),
BENCH_PDF_BATCH (6), BENCH_REDIS_URL (default redis://127.0.0.1:6379/9, flushed before and
after: no other system may use that database during the run, or it takes our arq jobs).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fpdf import FPDF

from bench.common import (
    command_line,
    flushdb,
    free_port,
    median,
    redis_url,
    spawned,
    table,
    wait_ready,
)
from shared.clients.llm.factory import embedding_provider
from shared.config import Settings

PAGES = int(os.environ.get("BENCH_PDF_PAGES", "100"))
WORDS_PER_PAGE = int(os.environ.get("BENCH_PDF_WORDS", "400"))
REPEATS = int(os.environ.get("BENCH_PDF_REPEATS", "3"))
BATCH = int(os.environ.get("BENCH_PDF_BATCH", "6"))
WORKER_COUNTS = (1, 2)
POLL_S = 0.05
JOB_TIMEOUT_S = 600.0
QUEUE_WARN_S = 5.0
TARGET_SECONDS, TARGET_SCALING = 10.0, 1.7
SERVER_ARGV = [sys.executable, "-m", "scripts.devserver"]
STAGES = ("upload", "queued", "starting", "extracting", "chunking", "embedding", "ready")
SINGLE_SEEDS = tuple(range(1, REPEATS + 1))
BATCH_SEEDS = tuple(range(101, 101 + BATCH))

# fmt: off
_FUNCTION_WORDS = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "by", "this", "are", "from", "at", "or", "an", "which", "but", "not", "have", "has", "can",
    "will", "its", "their", "these", "when", "between", "into", "more", "also", "than", "such",
]
_ONSETS = [
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
    "br", "cl", "dr", "fl", "gr", "pl", "pr", "sc", "sh", "st", "th", "tr",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
# fmt: on
_CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "rk", "ng"]
_SUFFIXES = ["", "", "", "tion", "ment", "ity", "ous", "ive", "al", "ing", "ed", "ly"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((1, 1, 2, 2, 2, 3))
        stem = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        words.add(stem + rng.choice(_SUFFIXES))
    return sorted(words)


def _sentence(rng: random.Random, vocabulary: list[str]) -> str:
    words = [
        rng.choice(_FUNCTION_WORDS) if rng.random() < 0.35 else rng.choice(vocabulary)
        for _ in range(rng.randint(6, 18))
    ]
    return " ".join(words).capitalize() + rng.choice(".....?;")[0]


def _wrap(pdf: FPDF, words: list[str], width: float, widths: dict[str, float]) -> list[str]:
    """Greedy line breaking (fpdf2's multi_cell is too slow for 900 PDF pages)."""
    space = pdf.get_string_width(" ")
    lines: list[str] = []
    line: list[str] = []
    used = 0.0
    for word in words:
        if word not in widths:
            widths[word] = pdf.get_string_width(word)
        needed = widths[word] + (space if line else 0.0)
        if line and used + needed > width:
            lines.append(" ".join(line))
            line, used, needed = [], 0.0, widths[word]
        line.append(word)
        used += needed
    if line:
        lines.append(" ".join(line))
    return lines


def make_pdf(seed: int, pages: int = PAGES, words_per_page: int = WORDS_PER_PAGE) -> bytes:
    """A deterministic text PDF: one heading and ~words_per_page words on every page."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 6000)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=UTC))
    pdf.set_auto_page_break(auto=False)
    margin, line_height = 15.0, 4.2
    width = pdf.w - 2 * margin
    widths: dict[str, float] = {}
    for page in range(1, pages + 1):
        pdf.add_page()
        topic = " ".join(rng.sample(vocabulary, 3)).title()
        pdf.set_font("helvetica", "B", 14)
        y = margin + 6
        pdf.text(margin, y, f"Chapter {page}: {topic}")
        pdf.set_font("helvetica", size=9)
        y += 4
        written = 0
        while written < words_per_page:
            paragraph: list[str] = []
            while written < words_per_page and len(paragraph) < 6:
                sentence = _sentence(rng, vocabulary)
                paragraph.append(sentence)
                written += sentence.count(" ") + 1
            y += 2
            for line in _wrap(pdf, " ".join(paragraph).split(), width, widths):
                y += line_height
                pdf.text(margin, y, line)
        if y > pdf.h - 10:
            raise RuntimeError(f"page {page} overflowed; lower BENCH_PDF_WORDS")
    if pdf.page_no() != pages:
        raise RuntimeError(f"generated {pdf.page_no()} pages, wanted {pages}")
    return bytes(pdf.output())


@dataclass
class Timeline:
    """What the polls of one job saw: monotonic seconds since the upload request started."""

    uploaded_at: float
    first_seen: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None
    done_at: float | None = None
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


def ingest(client: httpx.Client, auth: dict[str, str], pdfs: dict[str, bytes]) -> list[Timeline]:
    """Upload all `pdfs` in one request and poll their jobs every POLL_S until all succeed."""
    files = [("files", (name, data, "application/pdf")) for name, data in pdfs.items()]
    started = time.monotonic()
    response = client.post("/api/materials", files=files, headers=auth)
    if response.status_code != 202:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
    uploaded_at = time.monotonic() - started
    job_ids = [item["job"]["id"] for item in response.json()["items"]]
    if len(job_ids) != len(pdfs):
        raise RuntimeError(f"upload rejected files: {response.json()['rejected']}")
    timelines = {job_id: Timeline(uploaded_at) for job_id in job_ids}
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
        next_poll += POLL_S
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
class Result:
    workers: int
    singles: list[Timeline]
    batch: list[Timeline]
    batch_seconds: float


def run_once(workers: int, pdfs: dict[int, bytes]) -> tuple[Result, dict[str, str]]:
    data_dir = tempfile.mkdtemp(prefix=f"brainwave-bench-pdf-w{workers}-")
    env_vars = {
        "DATA_DIR": data_dir,
        "REDIS_URL": redis_url(),
        "CHROMA_URL": f"http://127.0.0.1:{free_port()}",
        "API_PORT": str(free_port()),
        "WORKERS": str(workers),
    }
    with (
        running_system(env_vars) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        auth = _login(client)
        singles = [
            ingest(client, auth, {f"single-{seed}.pdf": pdfs[seed]})[0] for seed in SINGLE_SEEDS
        ]
        batch = ingest(client, auth, {f"batch-{seed}.pdf": pdfs[seed] for seed in BATCH_SEEDS})
    batch_seconds = max(t.done_at or 0.0 for t in batch)
    return Result(workers, singles, batch, batch_seconds), env_vars


def main() -> None:
    generated = time.monotonic()
    pdfs = {seed: make_pdf(seed) for seed in (*SINGLE_SEEDS, *BATCH_SEEDS)}
    generated = time.monotonic() - generated
    results: list[Result] = []
    shown_env: dict[int, dict[str, str]] = {}
    loads = [os.getloadavg()[0]]
    for workers in WORKER_COUNTS:
        result, env_vars = run_once(workers, pdfs)
        results.append(result)
        shown_env[workers] = {**env_vars, "DATA_DIR": "$TMPDIR"}
        loads.append(os.getloadavg()[0])

    size_kb = median([len(d) for d in pdfs.values()]) / 1024
    provider = embedding_provider(Settings())
    print("== pdf_ingest: 100-page text PDF, upload to ready; worker scaling ==")
    for workers in WORKER_COUNTS:
        print(f"system (WORKERS={workers}): {command_line(SERVER_ARGV, shown_env[workers])}")
    print(
        f"input:   {len(pdfs)} PDFs of {PAGES} pages x ~{WORDS_PER_PAGE} words (fpdf2, seeded), "
        f"~{size_kb:.0f} KiB each, generated in {generated:.1f}s; "
        f"embedding provider: {provider}; poll every {POLL_S * 1000:.0f} ms"
    )
    print(
        f"host:    {os.cpu_count()} CPUs; 1-min load average before / after each system: "
        + " / ".join(f"{load:.1f}" for load in loads)
    )
    print()
    print(f"-- part 1: one PDF at a time, {REPEATS} uploads per system start (seconds) --")
    rows: list[list[object]] = []
    for result in results:
        for run_no, timeline in enumerate(result.singles, 1):
            stages = timeline.stage_seconds()
            rows.append(
                [
                    result.workers,
                    run_no,
                    timeline.ready_at or float("nan"),
                    *[stages.get(s, 0.0) for s in STAGES],
                ]
            )
        rows.append(
            [
                result.workers,
                "median",
                median([t.ready_at or 0.0 for t in result.singles]),
                *[median([t.stage_seconds().get(s, 0.0) for t in result.singles]) for s in STAGES],
            ]
        )
    print(table(["workers", "run", "to ready", *STAGES], [_secs(r) for r in rows]))
    others = {
        label
        for r in results
        for t in [*r.singles, *r.batch]
        for label in t.first_seen
        if label.startswith("other:")
    }
    if others:
        print(f"(unexpected stages seen: {sorted(others)})")
    print("(a stage no poll caught counts 0 s; its time is in the stage before it. The worker")
    print(" reports 'extracting page n/N' every 0.5 s, so `starting` holds the first 0.5 s of")
    print(" extraction; `chunking` lasts until the first embedding batch is stored)")
    slow = [t for r in results for t in [*r.singles, *r.batch] if t.queue_seconds() > QUEUE_WARN_S]
    if slow:
        print(
            f"warning: {len(slow)} job(s) queued > {QUEUE_WARN_S:.0f}s: another process on this "
            "Redis database (set BENCH_REDIS_URL) or a lost arq job re-enqueued by the reaper?"
        )
    print()
    print(f"-- part 2: {BATCH} PDFs in one upload, until all are ready --")
    rates = {r.workers: 60.0 * len(r.batch) / r.batch_seconds for r in results}
    rows = []
    for result in results:
        per_worker: dict[str, int] = {}
        for t in result.batch:
            per_worker[t.worker or "?"] = per_worker.get(t.worker or "?", 0) + 1
        rows.append(
            [
                result.workers,
                f"{result.batch_seconds:.2f}",
                f"{rates[result.workers]:.2f}",
                f"{median([t.ready_at or 0.0 for t in result.batch]):.2f}",
                " ".join(str(n) for n in sorted(per_worker.values(), reverse=True)),
            ]
        )
    print(table(["workers", "seconds", "docs/min", "median doc s", "jobs per worker"], rows))
    print()
    single = median([t.ready_at or 0.0 for t in results[0].singles])
    ratio = rates[WORKER_COUNTS[-1]] / rates[WORKER_COUNTS[0]]
    print(
        table(
            ["measure", "value", "target", "met"],
            [
                [
                    "median s to ready, WORKERS=1",
                    f"{single:.2f}",
                    f"<= {TARGET_SECONDS:.0f} s per {PAGES}-page PDF",
                    "yes" if single <= TARGET_SECONDS else "NO",
                ],
                [
                    "docs/min 2 workers / 1 worker",
                    f"{ratio:.2f}x",
                    f">= {TARGET_SCALING}x",
                    "yes" if ratio >= TARGET_SCALING else "NO",
                ],
            ],
        )
    )


def _secs(row: list[object]) -> list[object]:
    return [f"{v:.2f}" if isinstance(v, float) else v for v in row]
