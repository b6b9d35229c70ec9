"""Fallback HTTP load generator when `wrk` is not installed (run as its own process).

`python -m bench.loadgen URL --duration 10 --connections 32 [-H 'Name: value']` prints one
JSON object: requests, non_2xx, errors, seconds, requests_per_s, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def _load(url: str, duration: float, connections: int, headers: dict[str, str]) -> dict:
    latencies: list[float] = []
    non_2xx = errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal non_2xx, errors
            while (started := time.perf_counter()) < deadline:
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                non_2xx += not 200 <= response.status_code < 300

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": len(latencies),
        "non_2xx": non_2xx,
        "errors": errors,
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("-H", "--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    print(json.dumps(asyncio.run(_load(args.url, args.duration, args.connections, headers))))


if __name__ == "__main__":
    main()
