"""Server-Sent Events helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request

from shared.jobs import service as jobs
from shared.jobs.channels import job_events_channel
from shared.jobs.models import TERMINAL_STATUSES
from shared.jobs.schemas import JobOut
from shared.resources import Resources

KEEPALIVE_S = 15.0


def sse_headers() -> dict[str, str]:
    return {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def sse_event(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _current(resources: Resources, user_id: str, job_id: str) -> JobOut:
    async with resources.db.read_sessionmaker() as session:
        return await jobs.get_job(session, user_id, job_id)


async def job_event_stream(
    request: Request, resources: Resources, user_id: str, job_id: str
) -> AsyncIterator[bytes]:
    pubsub = resources.redis.pubsub()
    await pubsub.subscribe(job_events_channel(job_id))  # before reading, so nothing is missed
    try:
        job = await _current(resources, user_id, job_id)
        yield sse_event("job", job.model_dump(mode="json"))
        while job.status not in TERMINAL_STATUSES:
            if await request.is_disconnected():
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEPALIVE_S)
            if message is None:
                # quiet for a while: re-read the row (a publish may have been lost) and ping
                latest = await _current(resources, user_id, job_id)
                if latest != job:
                    job = latest
                    yield sse_event("job", job.model_dump(mode="json"))
                else:
                    yield b": keep-alive\n\n"
                continue
            job = JobOut.model_validate_json(message["data"])
            yield sse_event("job", job.model_dump(mode="json"))
    finally:
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def with_keepalive(
    events: AsyncIterator[bytes], interval: float = KEEPALIVE_S
) -> AsyncIterator[bytes]:
    """Pass events through, and send an SSE comment whenever the source is quiet for
    `interval` seconds (a slow model), so proxies and browsers keep the stream open."""
    iterator = aiter(events)
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            finally:
                if done:
                    pending = None
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
