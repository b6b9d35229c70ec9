"""The vector store: a Chroma server reached over HTTP.

Chroma's embedded (PersistentClient) mode must not be opened for writing by several
processes on one directory, so every process — the API and each worker — talks to one
`chroma run` server. One collection per embedding model keeps vectors of different models
apart; every vector carries its owner and material in metadata, and every query filters on
the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import chromadb
from chromadb.api import AsyncClientAPI
from chromadb.api.models.AsyncCollection import AsyncCollection
from chromadb.config import Settings as ChromaSettings
from redis.asyncio import Redis

from shared.turns import RedisTurns


@dataclass(frozen=True, slots=True)
class VectorHit:
    chunk_id: str
    material_id: str
    distance: float


def collection_name(model_id: str) -> str:
    return "chunks-" + re.sub(r"[^a-zA-Z0-9._-]", "-", model_id)


WRITE_LOCK_KEY = "brainwave:chroma:write-lock"


async def connect(url: str) -> AsyncClientAPI:
    """An async HTTP client for the Chroma server at `url`."""
    parsed = urlparse(url)
    return await chromadb.AsyncHttpClient(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 8000,
        ssl=parsed.scheme == "https",
        settings=ChromaSettings(anonymized_telemetry=False),
    )


class VectorStore:
    """Connects on first use, so a process starts (and reports not-ready) while Chroma is down.

    Writes from every process take turns through Redis (`shared.turns`), one batch at a
    time: the Chroma 1.5 server indexes ~1,000 vectors/s for one or two writers but
    collapses to ~70/s with six concurrent writers (measured here, 768 dimensions), so
    taking turns is ~10x faster than writing at once.
    """

    def __init__(self, url: str, model_id: str, redis: Redis | None = None) -> None:
        self.url = url
        self.model_id = model_id
        self._turns = RedisTurns(redis, WRITE_LOCK_KEY) if redis is not None else None
        self._client: AsyncClientAPI | None = None
        self._collection_handle: AsyncCollection | None = None
        self._lock = asyncio.Lock()

    async def _collection(self) -> AsyncCollection:
        if self._collection_handle is None:
            async with self._lock:
                if self._collection_handle is None:
                    client = self._client or await connect(self.url)
                    self._client = client
                    self._collection_handle = await client.get_or_create_collection(
                        collection_name(self.model_id),
                        embedding_function=None,
                        metadata={"hnsw:space": "cosine", "embedding_model": self.model_id},
                    )
        return self._collection_handle

    async def heartbeat(self) -> int:
        collection = await self._collection()  # also proves the collection is reachable
        assert self._client is not None
        await collection.count()
        return int(await self._client.heartbeat())

    async def upsert(
        self,
        ids: list[str],
        embeddings: list[list[float]],
        metadatas: list[Mapping[str, str | int | float | bool]],
    ) -> None:
        if ids:
            collection = await self._collection()
            vectors: list[Sequence[float]] = list(embeddings)
            async with self._write_turn():
                await collection.upsert(ids=ids, embeddings=vectors, metadatas=list(metadatas))

    async def delete_material(self, material_id: str, *, from_position: int = 0) -> None:
        """Delete the material's vectors, or only those at `from_position` and after."""
        where: dict[str, Any] = {"material_id": material_id}
        if from_position:
            where = {"$and": [where, {"position": {"$gte": from_position}}]}
        collection = await self._collection()
        async with self._write_turn():
            await collection.delete(where=where)

    async def delete_owner(self, user_id: str) -> None:
        """Delete a user's vectors from every collection, earlier embedding models' too."""
        await self._collection()  # connects
        assert self._client is not None
        for collection in await self._client.list_collections():
            async with self._write_turn():
                await collection.delete(where={"user_id": user_id})

    def _write_turn(self) -> AbstractAsyncContextManager[object]:
        if self._turns is None:
            return contextlib.nullcontext()
        return self._turns.take()

    async def query(
        self,
        embedding: list[float],
        *,
        user_id: str,
        limit: int,
        material_ids: list[str] | None = None,
    ) -> list[VectorHit]:
        where: dict[str, Any] = {"user_id": user_id}
        if material_ids:
            where = {"$and": [where, {"material_id": {"$in": material_ids}}]}
        query_vectors: list[Sequence[float] | Sequence[int]] = [embedding]
        result = await (await self._collection()).query(
            query_embeddings=query_vectors,
            n_results=limit,
            where=where,
            include=["metadatas", "distances"],
        )
        ids = result["ids"][0]
        metadatas = (result.get("metadatas") or [[]])[0]
        distances = (result.get("distances") or [[]])[0]
        return [
            VectorHit(chunk_id=i, material_id=str(m["material_id"]), distance=float(d))
            for i, m, d in zip(ids, metadatas, distances, strict=True)
        ]

    async def count(self) -> int:
        return int(await (await self._collection()).count())
