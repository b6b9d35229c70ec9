"""Extracting documents takes turns in a worker (`WORKER_EXTRACTIONS` at once); the job says so
while it waits. Run in-process on a real upload, database, Redis and Chroma."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.materials import pipeline
from tests.conftest import sign_up
from tests.test_uploads import make_pdf, upload


async def test_a_document_waits_for_a_free_extractor(make_stack: Any) -> None:
    async with make_stack() as stack:  # a queue of its own that no worker takes from
        await waits_for_a_free_extractor(stack)


async def waits_for_a_free_extractor(stack: Any) -> None:
    resources, alice = stack.resources, await sign_up(stack.client)
    response = await upload(
        stack.client, alice, ("cells.pdf", make_pdf(["Mitochondria make ATP."]))
    )
    assert response.status_code == 202, response.text
    [created] = response.json()["items"]
    stages: list[str] = []

    async def progress(percent: int, stage: str) -> None:
        stages.append(stage)

    turns = resources.extraction_turns
    for _ in range(resources.settings.worker_extractions):
        await turns.acquire()  # every turn taken by other jobs
    payload = {"material_id": created["material"]["id"]}
    job = asyncio.ensure_future(
        pipeline.process_material(resources, alice.user_id, payload, progress)
    )
    try:
        await asyncio.sleep(0.5)
        assert not job.done()
        assert stages[-1] == "waiting for a free extractor"
    finally:
        for _ in range(resources.settings.worker_extractions):
            turns.release()
    result = await asyncio.wait_for(job, 30)
    assert result["chunks"] >= 1
    assert stages[-1] == "ready"
