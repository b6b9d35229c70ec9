from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import ResourcesDep
from shared.jobs.channels import WORKER_HEARTBEAT_TTL_S, WORKER_HEARTBEATS_KEY
from shared.resources import Resources

router = APIRouter(prefix="/api/health", tags=["ops"])

CHECK_TIMEOUT_S = 2.0


@router.get("")
async def health() -> dict[str, str]:
    """Liveness: the process answers. No I/O."""
    return {"status": "ok"}


async def _check(probe: Awaitable[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        value = await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"[:300]}
    result = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(value, dict):
        result.update(value)
    return result


async def _db(resources: Resources) -> None:
    async with resources.db.read_engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _redis(resources: Resources) -> dict[str, Any]:
    now = time.time()
    async with resources.redis.pipeline(transaction=False) as pipe:
        pipe.ping()
        pipe.zcount(WORKER_HEARTBEATS_KEY, now - WORKER_HEARTBEAT_TTL_S, "+inf")
        pipe.zcard(resources.settings.queue_name)
        _, workers, depth = await pipe.execute()
    return {"live_workers": int(workers), "queue_depth": int(depth)}


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
async def ready(resources: ResourcesDep) -> JSONResponse:
    """Readiness: database, Redis (with live workers and queue depth) and Chroma.

    503 when the database, Redis or Chroma is unreachable. Zero live workers is reported
    (`workers.ok: false`) but does not fail readiness: the API can still accept work.
    """
    db, redis_check, chroma = await asyncio.gather(
        _check(_db(resources)),
        _check(_redis(resources)),
        _check(resources.store.heartbeat()),
    )
    workers = {
        "ok": redis_check.get("live_workers", 0) > 0,
        "live": redis_check.pop("live_workers", 0),
    }
    queue = {"depth": redis_check.pop("queue_depth", None)}
    checks = {"database": db, "redis": redis_check, "chroma": chroma, "workers": workers}
    healthy = all(c["ok"] for c in (db, redis_check, chroma))
    body = {"status": "ready" if healthy else "unavailable", "checks": checks, "queue": queue}
    return JSONResponse(body, status_code=200 if healthy else 503)
