"""`python -m bench.run [job_poll] [job_lifecycle] [job_create] [chat_first_token] [pdf_ingest]
[rss]`: run the benchmarks (all by default).

Environment: BENCH_REDIS_URL (default redis://127.0.0.1:6379/9, flushed before and after),
BENCH_DURATION / BENCH_ROUNDS / BENCH_CONNECTIONS / BENCH_WRK_THREADS (job_poll),
BENCH_JOBS / BENCH_ROUNDS / BENCH_PROFILES (default,tuned) / BENCH_WORKER_SETTINGS (JSON overrides
of the worker settings, e.g. '{"max_jobs": 30}') (job_lifecycle),
BENCH_CHAT_RUNS / BENCH_CHAT_OFFLINE_RUNS / BENCH_CHAT_LATENCY_MS (chat_first_token: 50, 20, 200),
see bench/job_create.py, bench/pdf_ingest.py and bench/rss.py for theirs.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import time

BENCHMARKS = ("job_poll", "job_lifecycle", "job_create", "chat_first_token", "pdf_ingest", "rss")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    print(f"command: {shlex.join([sys.executable, '-m', 'bench.run', *argv])}\n")
    for name in names:
        started = time.monotonic()
        importlib.import_module(f"bench.{name}").main()
        print(f"({name} took {time.monotonic() - started:.0f}s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
