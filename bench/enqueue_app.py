"""The `job_create` benchmark's baseline: an ASGI app whose one route only enqueues an arq
job (`uvicorn bench.enqueue_app:app`). Same Redis settings and queue as the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import create_pool
from fastapi import FastAPI, Response, status

from shared.config import get_settings
from shared.ids import new_id
from shared.materials.service import PROCESS_MATERIAL
from shared.resources import redis_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.redis = await create_pool(
        redis_settings(settings), default_queue_name=settings.queue_name, retry=0
    )
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/enqueue", status_code=status.HTTP_202_ACCEPTED)
async def enqueue() -> Response:
    job_id = new_id()
    await app.state.redis.enqueue_job(PROCESS_MATERIAL, job_id, _job_id=job_id)
    return Response(content=b'{"id":"%s"}' % job_id.encode(), media_type="application/json")
