"""`pdf_ingest`: seconds from upload to `ready` for a 100-page text PDF, and worker scaling.

In each of BENCH_PDF_ROUNDS rounds, a system with WORKERS=1 and then one with WORKERS=2 is
started exactly as `make run` does (`python -m scripts.devserver`, its own DATA_DIR, API
port, Chroma port and Redis database). A user registers and logs in; every worker process
then runs a few small warm-up PDFs (so no worker pays its first-job start-up costs, such as
pypdf's import, inside a measurement); then:
1. single: REPEATS times, one generated PDF (PAGES pages of ~WORDS_PER_PAGE words of seeded
   pseudo-English, a heading per page) is uploaded with POST /api/materials and its job is
   polled every POLL_S. Reported: seconds from the upload request to the first poll that
   shows stage `ready` (or status `succeeded`), and per stage the time from the first poll
   showing it to the first poll showing the next one (upload = the request itself, queued =
   until the status leaves `queued`). The median over all repeats of all rounds is reported.
2. batch: BATCH different PDFs (the same ones in every run) in one request, polled every
   BATCH_POLL_S; seconds from the upload request to the last job's own `finished_at` give
   docs/minute, so the poll interval does not bound the figure; polling 6 jobs every 50 ms
   cost the API and this process ~1.2 CPU s per batch (~0.5 at 200 ms) on the 2 cores the
   system shares with it. Also shown: how many jobs each worker process ran and the CPU
   seconds every process used during the batch (`/proc` via psutil; Redis is the shared
   server, so its figure includes other users). The scaling figure is the median docs/min
   with 2 workers over the median with 1, next to the ratio of each round.

Environment: BENCH_PDF_PAGES (100), BENCH_PDF_WORDS (400 per page), BENCH_PDF_REPEATS (3),
BENCH_PDF_BATCH (6), BENCH_PDF_ROUNDS (3), BENCH_PDF_BATCH_POLL_MS (200),
BENCH_PDF_MAX_JOBS (unset: the workers' default; 3 makes two workers split six jobs 3/3,
WORKER_MAX_JOBS of both systems), BENCH_REDIS_URL (default redis://127.0.0.1:6379/9,
flushed before and after: no other system may use that database during the run, or it
takes our arq jobs).
"""

from __future__ import annotations

import os
import time

from bench.common import command_line, median, table
from bench.pdf_make import PAGES, WORDS_PER_PAGE, make_pdf
from bench.pdf_runs import (
    BATCH,
    BATCH_POLL_S,
    BATCH_SEEDS,
    MAX_JOBS,
    POLL_S,
    REPEATS,
    ROUNDS,
    SERVER_ARGV,
    SINGLE_SEEDS,
    STAGES,
    WORKER_COUNTS,
    Batch,
    Run,
    run_all,
)
from shared.clients.llm.factory import embedding_provider
from shared.config import Settings

QUEUE_WARN_S = 5.0
TARGET_SECONDS, TARGET_SCALING = 10.0, 1.7
CPU_COLUMNS = ("api", "chroma", "redis", "bench")


def main() -> None:
    generated = time.monotonic()
    pdfs = {seed: make_pdf(seed) for seed in (*SINGLE_SEEDS, *BATCH_SEEDS)}
    generated = time.monotonic() - generated
    runs, loads = run_all(pdfs)
    print("== pdf_ingest: 100-page text PDF, upload to ready; worker scaling ==")
    _print_setup(runs, pdfs, generated, loads)
    print()
    _print_singles(runs)
    print()
    _print_batches([run.batch for run in runs])
    print()
    _print_targets(runs)


def _print_setup(
    runs: list[Run], pdfs: dict[int, bytes], generated: float, loads: list[float]
) -> None:
    for workers in WORKER_COUNTS:
        env = next(run.env for run in runs if run.batch.workers == workers)
        print(f"system (WORKERS={workers}): {command_line(SERVER_ARGV, env)}")
    size_kb = median([len(d) for d in pdfs.values()]) / 1024
    print(
        f"input:   {len(pdfs)} PDFs of {PAGES} pages x ~{WORDS_PER_PAGE} words (fpdf2, seeded), "
        f"~{size_kb:.0f} KiB each, generated in {generated:.1f}s; "
        f"embedding provider: {embedding_provider(Settings())}; poll every "
        f"{POLL_S * 1000:.0f} ms (batch: {BATCH_POLL_S * 1000:.0f} ms); "
        f"WORKER_MAX_JOBS {MAX_JOBS or 'default'}"
    )
    print(
        f"host:    {os.cpu_count()} CPUs; 1-min load average before / after each system: "
        + " / ".join(f"{load:.1f}" for load in loads)
    )


def _print_singles(runs: list[Run]) -> None:
    print(f"-- part 1: one PDF at a time, {REPEATS} uploads per system start (seconds) --")
    rows: list[list[object]] = []
    for workers in WORKER_COUNTS:
        singles = [t for run in runs if run.batch.workers == workers for t in run.singles]
        for run_no, timeline in enumerate(singles, 1):
            stages = timeline.stage_seconds()
            ready = timeline.ready_at or float("nan")
            rows.append([workers, run_no, ready, *[stages.get(s, 0.0) for s in STAGES]])
        rows.append(
            [
                workers,
                "median",
                median([t.ready_at or 0.0 for t in singles]),
                *[median([t.stage_seconds().get(s, 0.0) for t in singles]) for s in STAGES],
            ]
        )
    print(table(["workers", "run", "to ready", *STAGES], [_secs(r) for r in rows]))
    _print_warnings(runs)


def _print_warnings(runs: list[Run]) -> None:
    timelines = [t for run in runs for t in [*run.singles, *run.batch.timelines]]
    others = {label for t in timelines for label in t.first_seen if label.startswith("other:")}
    if others:
        print(f"(unexpected stages seen: {sorted(others)})")
    print("(a stage no poll caught counts 0 s; its time is in the stage before it. The worker")
    print(" reports 'extracting page n/N' every 0.5 s, so `starting` holds the first 0.5 s of")
    print(" extraction; `chunking` lasts until the first embedding batch is stored)")
    slow = [t for t in timelines if t.queue_seconds() > QUEUE_WARN_S]
    if slow:
        print(
            f"warning: {len(slow)} job(s) queued > {QUEUE_WARN_S:.0f}s: another process on this "
            "Redis database (set BENCH_REDIS_URL) or a lost arq job re-enqueued by the reaper?"
        )


def _print_batches(batches: list[Batch]) -> None:
    print(f"-- part 2: {BATCH} PDFs in one upload, until all are ready ({ROUNDS} rounds) --")
    headers = ["round", "workers", "seconds", "docs/min", "median doc s", "jobs per worker"]
    headers += ["CPU s: workers", *CPU_COLUMNS, "total", "per doc", "cores busy"]
    rows = [_batch_row(batch) for batch in batches]
    print(table(headers, rows))
    print("(CPU seconds of each process during the batch; `redis` is the shared server, other")
    print(" sessions' use included; `cores busy` = total CPU s / batch seconds, of 2)")


def _batch_row(batch: Batch) -> list[object]:
    workers = {k: v for k, v in batch.cpu.items() if k.startswith("worker")}
    total = sum(batch.cpu.values())
    return [
        batch.round_no,
        batch.workers,
        f"{batch.seconds:.2f}",
        f"{batch.docs_per_min:.1f}",
        f"{median([t.ready_at or 0.0 for t in batch.timelines]):.2f}",
        " / ".join(str(n) for n in batch.split.values()),
        " + ".join(f"{v:.1f}" for v in workers.values()),
        *[f"{batch.cpu.get(name, 0.0):.1f}" for name in CPU_COLUMNS],
        f"{total:.1f}",
        f"{total / len(batch.timelines):.2f}",
        f"{total / batch.seconds:.2f}",
    ]


def _print_targets(runs: list[Run]) -> None:
    rates = {
        w: median([r.batch.docs_per_min for r in runs if r.batch.workers == w])
        for w in WORKER_COUNTS
    }
    per_round = [
        two.batch.docs_per_min / one.batch.docs_per_min
        for one, two in zip(runs[::2], runs[1::2], strict=True)
    ]
    singles = [t for run in runs if run.batch.workers == 1 for t in run.singles]
    single = median([t.ready_at or 0.0 for t in singles])
    ratio = rates[2] / rates[1]
    rows = [
        [
            "median s to ready, WORKERS=1",
            f"{single:.2f}",
            f"<= {TARGET_SECONDS:.0f} s per {PAGES}-page PDF",
            "yes" if single <= TARGET_SECONDS else "NO",
        ],
        [
            f"median docs/min 2 workers / 1 worker ({rates[2]:.1f} / {rates[1]:.1f})",
            f"{ratio:.2f}x",
            f">= {TARGET_SCALING}x",
            "yes" if ratio >= TARGET_SCALING else "NO",
        ],
        ["ratio per round", " ".join(f"{r:.2f}x" for r in per_round), "", ""],
    ]
    print(table(["measure", "value", "target", "met"], rows))


def _secs(row: list[object]) -> list[object]:
    return [f"{v:.2f}" if isinstance(v, float) else v for v in row]
