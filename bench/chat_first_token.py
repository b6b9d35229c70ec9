"""`chat_first_token`: how long the API takes to pass the model's first token to the client.

The Gemini fake (tests/fakes/gemini.py) runs in this process, in a thread, with a fixed
latency L before its first streamed chunk (`slow(L)`, then SCRIPT's chunks CHUNK_DELAY_S
apart). It stamps each streamGenerateContent request with `perf_counter()` when the handler
gets it and when it hands its first chunk to the server — the same clock the client here
uses. The system is started exactly as `make run` does (`python -m scripts.devserver`, own
DATA_DIR / API port / Chroma port, REDIS_URL database 9, WORKERS=1) with LLM_PROVIDER=gemini
pointed at the fake and EMBEDDING_PROVIDER=offline. A user registers, adds a text material
(its job polled to `succeeded`, so retrieval finds chunks) and opens a chat session; then
RUNS messages are sent one after another on one keep-alive connection with
`Accept: text/event-stream`, each read to its end.

Per message, from the client's `perf_counter()` just before the request is sent:
- T_client: until the first `event: token` line arrives;
- provider:  the fake's receive → first chunk (≈ L);
- overhead:  T_client − provider, i.e. all the time the API adds (auth, session lookup,
  history, saving the question, retrieval = embedding + Chroma query, the SDK call, SSE);
- before:    client send → the fake receives the model request (the part before the model);
- after:     the fake's first chunk → the client's first token event (the relay).
Then a second system with LLM_PROVIDER=offline: OFFLINE_RUNS messages, time to first token.
WARMUP messages before each series are not counted.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bench.common import (
    command_line,
    flushdb,
    free_port,
    redis_url,
    spawned,
    table,
    tail,
    wait_ready,
)
from tests.fakes.gemini import FakeGemini

RUNS = int(os.environ.get("BENCH_CHAT_RUNS", "50"))
OFFLINE_RUNS = int(os.environ.get("BENCH_CHAT_OFFLINE_RUNS", "20"))
LATENCY_S = float(os.environ.get("BENCH_CHAT_LATENCY_MS", "200")) / 1000
CHUNK_DELAY_S = 0.01
WARMUP = 2
SCRIPT = ["Photosynthesis turns light ", "into chemical energy ", "in chloroplasts [1]. "]
MODEL = "gemini-test"
TARGET_OVERHEAD_MS = 50.0
QUESTION = "How does photosynthesis store the energy of light?"
MATERIAL = (
    "Photosynthesis turns light into chemical energy in chloroplasts. Chlorophyll absorbs "
    "red and blue light. The light reactions split water and make ATP and NADPH; the Calvin "
    "cycle uses them to fix carbon dioxide into sugar. "
) * 15


@dataclass
class TimedGemini(FakeGemini):
    """The fake, stamping each stream: (handler received, first chunk handed over)."""

    stamps: list[tuple[float, float]] = field(default_factory=list)

    async def _dispatch(self, request: Request) -> Response:
        received = time.perf_counter()
        response = await super()._dispatch(request)
        if isinstance(response, StreamingResponse) and response.status_code == 200:
            response.body_iterator = self._timed(response.body_iterator, received)
        return response

    async def _timed(self, chunks: AsyncIterable[Any], received: float) -> AsyncIterator[Any]:
        first = True
        async for chunk in chunks:
            if first:
                first = False
                self.stamps.append((received, time.perf_counter()))
            yield chunk


def _prepare(client: httpx.Client) -> str:
    """Register, log in, add a material and wait for its job; return the chat session id."""
    email, password = f"bench-{time.time_ns()}@example.com", "bench-password-123"
    client.post("/api/auth/register", json={"email": email, "password": password})
    response = client.post("/api/auth/login", data={"username": email, "password": password})
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    response = client.post("/api/materials/text", json={"title": "Bench note", "text": MATERIAL})
    response.raise_for_status()
    job_id = response.json()["job"]["id"]
    deadline, status = time.monotonic() + 60, "queued"
    while status not in {"succeeded", "failed", "cancelled"}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        response = client.get(f"/api/jobs/{job_id}")
        response.raise_for_status()
        status = response.json()["status"]
    if status != "succeeded":
        raise RuntimeError(f"material job {job_id} ended {status}")
    response = client.post("/api/chat/sessions", json={"title": "Bench chat"})
    response.raise_for_status()
    return str(response.json()["id"])


def _ask(client: httpx.Client, session_id: str) -> tuple[float, float, list[str]]:
    """One streamed message: (send time, first token time, event names), read to the end."""
    names: list[str] = []
    first = float("nan")
    sent = time.perf_counter()
    with client.stream(
        "POST",
        f"/api/chat/sessions/{session_id}/messages",
        headers={"Accept": "text/event-stream"},
        json={"content": QUESTION},
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                if not names and line == "event: token":
                    first = time.perf_counter()
                names.append(line[7:])
    if not names or names[0] != "token" or names[-2:] != ["citations", "done"]:
        raise RuntimeError(f"unexpected stream: {names}")
    return sent, first, names


def _system(
    provider_env: dict[str, str], prefix: str, runs: int, gemini: TimedGemini | None
) -> tuple[dict[str, str], list[tuple[float, float, float, float]]]:
    """Start the system, prepare, send WARMUP + runs messages; per run (sent, first token,
    fake received, fake first chunk) — the last two NaN without the fake."""
    url = redis_url()
    api_port, chroma_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    env_vars = {
        "DATA_DIR": str(data_dir),
        "REDIS_URL": url,
        "CHROMA_URL": f"http://127.0.0.1:{chroma_port}",
        "API_PORT": str(api_port),
        "WORKERS": "1",
        "EMBEDDING_PROVIDER": "offline",
        # 70 questions a minute: the per-user chat limit is not what this measures.
        "RATE_LIMIT_CHAT_USER": "1000000/minute",
        **provider_env,
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "LLM_"))}
    env = {**inherited, **env_vars, "PYTHONUNBUFFERED": "1"}
    base = f"http://127.0.0.1:{api_port}"
    log_file = data_dir / "devserver.log"
    argv = [sys.executable, "-m", "scripts.devserver"]
    results: list[tuple[float, float, float, float]] = []
    flushdb(url)
    try:
        with (
            spawned(argv, env=env, log_file=log_file, stop_timeout=45) as server,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            wait_ready(base, server, log_file)
            session_id = _prepare(client)
            for i in range(WARMUP + runs):
                before = len(gemini.stamps) if gemini else 0
                sent, first, _ = _ask(client, session_id)
                if i < WARMUP:
                    continue
                received = chunk = float("nan")
                if gemini:
                    if len(gemini.stamps) != before + 1:
                        raise RuntimeError("the fake did not see exactly one stream request")
                    received, chunk = gemini.stamps[-1]
                results.append((sent, first, received, chunk))
            if server.poll() is not None:
                raise RuntimeError(f"devserver died during the run:\n{tail(log_file)}")
    finally:
        flushdb(url)
        shutil.rmtree(data_dir, ignore_errors=True)
    shown = {k: ("$TMPDIR" if v == str(data_dir) else v) for k, v in env_vars.items()}
    return shown, results


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _row(name: str, values_s: list[float]) -> list[object]:
    ms = [v * 1000 for v in values_s]
    return [name, _pct(ms, 50), _pct(ms, 90), max(ms), min(ms)]


def main() -> None:
    headers = ["ms", "p50", "p90", "max", "min"]
    gemini = TimedGemini(script=list(SCRIPT), chunk_delay=CHUNK_DELAY_S)
    with gemini:
        gemini.slow(LATENCY_S)
        gemini_env, runs = _system(
            {
                "LLM_PROVIDER": "gemini",
                "GEMINI_API_KEY": gemini.api_key,
                "GEMINI_BASE_URL": gemini.base_url,
                "GEMINI_MODEL": MODEL,
            },
            "brainwave-bench-chat-",
            RUNS,
            gemini,
        )
    offline_env, offline = _system(
        {"LLM_PROVIDER": "offline"}, "brainwave-bench-chat-offline-", OFFLINE_RUNS, None
    )

    t_client = [first - sent for sent, first, _, _ in runs]
    provider = [chunk - received for _, _, received, chunk in runs]
    overhead = [t - p for t, p in zip(t_client, provider, strict=True)]
    before = [received - sent for sent, _, received, _ in runs]
    after = [first - chunk for _, first, _, chunk in runs]
    argv = [sys.executable, "-m", "scripts.devserver"]
    print("== chat_first_token: POST /api/chat/sessions/{id}/messages, first `event: token` ==")
    print("system (gemini): " + command_line(argv, gemini_env))
    print("system (offline): " + command_line(argv, offline_env))
    print(
        f"fake Gemini in-process: latency L = {LATENCY_S * 1000:.0f} ms before the first of "
        f"{len(SCRIPT)} chunks, {CHUNK_DELAY_S * 1000:.0f} ms apart; provider = the fake's own "
        f"receive → first chunk; {WARMUP} warm-up messages not counted\n"
    )
    print(f"gemini fake, {len(runs)} runs")
    rows = [
        _row("T_client (send → first token)", t_client),
        _row("provider (fake receive → first chunk)", provider),
        _row("overhead = T_client − provider", overhead),
        _row("  before: send → fake receives", before),
        _row("  after: fake first chunk → client token", after),
    ]
    print(table(headers, rows))
    print()
    print(f"offline provider, {len(offline)} runs (informative)")
    print(
        table(headers, [_row("T_client (send → first token)", [f - s for s, f, _, _ in offline])])
    )
    print()
    p50 = _pct(overhead, 50) * 1000
    verdict = "met" if p50 <= TARGET_OVERHEAD_MS else "MISSED"
    print(
        table(
            ["overhead p50 ms", "target", "result"],
            [[p50, f"<= {TARGET_OVERHEAD_MS:.0f} ms", verdict]],
        )
    )
