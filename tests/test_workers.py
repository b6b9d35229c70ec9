"""Real worker processes: two workers indexing at once into the one Chroma server lose no
vector. (A worker SIGKILLed mid-job: tests/test_faults.py.)"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from tests.conftest import Stack, sign_up, wait_job

VOCABULARY = [f"term{i:04d}" for i in range(3000)]


def long_text(seed: int, paragraphs: int) -> str:
    rng = random.Random(seed)
    return "\n\n".join(
        " ".join(rng.choice(VOCABULARY) for _ in range(60)) + "." for _ in range(paragraphs)
    )


@pytest.mark.parametrize("materials", [6])
async def test_two_workers_index_at_once_and_every_vector_is_found(
    make_stack: Any, materials: int
) -> None:
    stack: Stack
    async with make_stack() as stack:
        stack.workers.start()
        stack.workers.start()
        account = await sign_up(stack.client)
        created = []
        for i in range(materials):
            response = await stack.client.post(
                "/api/materials/text",
                headers=account.headers,
                json={"title": f"Part {i}", "text": long_text(100 + i, 300)},
            )
            created.append(response.json())
        jobs = await asyncio.gather(
            *(wait_job(stack.client, account, c["job"]["id"], timeout=120) for c in created)
        )
        assert {j["status"] for j in jobs} == {"succeeded"}
        assert len({j["worker"] for j in jobs}) == 2, "both workers should have indexed"

        embedder = stack.resources.embedder
        collection = await stack.resources.store._collection()
        total = sum(j["result"]["chunks"] for j in jobs)
        mine = await collection.get(where={"user_id": account.user_id}, include=[])
        assert len(mine["ids"]) == len(set(mine["ids"])) == total
        found = 0
        for c in created:
            material_id = c["material"]["id"]
            page = await stack.client.get(
                f"/api/materials/{material_id}/chunks",
                params={"limit": 200},
                headers=account.headers,
            )
            chunks = page.json()["items"]
            vectors = await embedder.embed([ch["text"] for ch in chunks])
            result = await collection.query(
                query_embeddings=vectors,  # type: ignore[arg-type]
                n_results=1,
                where={"user_id": account.user_id},
            )
            assert [ids[0] for ids in result["ids"]] == [ch["id"] for ch in chunks]
            found += len(chunks)
        assert found == total
