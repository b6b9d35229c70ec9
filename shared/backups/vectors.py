"""The Chroma part of a backup and a restore, through Chroma's HTTP API only.

In docker compose the workers cannot see the Chroma server's files, so a snapshot is an
export: every collection's ids, embeddings, documents and metadatas, read in pages into
`<file>.jsonl` (one record per line) and `<file>.f32` (the embeddings as raw float32 rows,
a quarter of their size as JSON). A restore recreates each collection and adds them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from chromadb.api import AsyncClientAPI
from chromadb.api.models.AsyncCollection import AsyncCollection
from numpy.typing import NDArray

from shared.backups.schemas import CollectionSnapshot

PAGE_SIZE = 500
Step = Callable[[int, int], Awaitable[None]]
"""Called with (vectors done, vectors in all) after each page."""

Record = dict[str, Any]


async def export_collections(
    client: AsyncClientAPI, directory: Path, step: Step
) -> list[CollectionSnapshot]:
    """Export every collection on the server into `directory`.

    The ids are listed first and then read by id in pages, so vectors added meanwhile are
    left out and vectors deleted meanwhile are skipped, never duplicated or mis-paged.
    """
    collections = await client.list_collections()
    id_lists = [(await c.get(include=[]))["ids"] for c in collections]
    total = sum(len(ids) for ids in id_lists)
    progress = _Counter(total, step)
    return [
        await _export(collection, ids, directory / f"collection-{index}", progress)
        for index, (collection, ids) in enumerate(zip(collections, id_lists, strict=True))
    ]


class _Counter:
    def __init__(self, total: int, step: Step) -> None:
        self.done = 0
        self.total = total
        self.step = step

    async def add(self, n: int) -> None:
        self.done += n
        await self.step(self.done, self.total)


async def _export(
    collection: AsyncCollection, ids: list[str], stem: Path, progress: _Counter
) -> CollectionSnapshot:
    snapshot = CollectionSnapshot(
        name=collection.name,
        metadata=dict(collection.metadata) if collection.metadata else None,
        dimension=0,
        count=0,
        file=stem.name,
    )
    for start in range(0, len(ids), PAGE_SIZE):
        batch = ids[start : start + PAGE_SIZE]
        page = await collection.get(ids=batch, include=["embeddings", "documents", "metadatas"])
        matrix = np.asarray(page["embeddings"], dtype=np.float32)
        records = _records(page["ids"], page.get("documents"), page.get("metadatas"))
        await asyncio.to_thread(_append, stem, records, matrix)
        snapshot.count += len(records)
        if records:
            snapshot.dimension = int(matrix.shape[1])
        await progress.add(len(batch))
    return snapshot


def _records(ids: list[str], documents: Any, metadatas: Any) -> list[Record]:
    documents = documents or [None] * len(ids)
    metadatas = metadatas or [None] * len(ids)
    return [
        {"id": i, "document": d, "metadata": m}
        for i, d, m in zip(ids, documents, metadatas, strict=True)
    ]


def _append(stem: Path, records: list[Record], matrix: NDArray[np.float32]) -> None:
    with stem.with_suffix(".jsonl").open("ab") as lines:
        lines.writelines(orjson.dumps(r) + b"\n" for r in records)
    with stem.with_suffix(".f32").open("ab") as vectors:
        matrix.tofile(vectors)


async def import_collections(
    client: AsyncClientAPI, directory: Path, snapshots: Sequence[CollectionSnapshot]
) -> dict[str, int]:
    """Recreate each snapshot's collection (dropping one of that name) and load it.

    Returns the number of vectors each collection holds afterwards.
    """
    existing = {c.name for c in await client.list_collections()}
    counts = {}
    for snapshot in snapshots:
        if snapshot.name in existing:
            await client.delete_collection(snapshot.name)
        collection = await client.create_collection(
            snapshot.name, metadata=snapshot.metadata, embedding_function=None
        )
        for records, matrix in _pages(directory / snapshot.file, snapshot):
            await _add(collection, records, matrix)
        counts[snapshot.name] = await collection.count()
    return counts


def _pages(stem: Path, snapshot: CollectionSnapshot) -> Iterator[tuple[list[Record], Any]]:
    if snapshot.count == 0:
        return
    shape = (snapshot.count, snapshot.dimension)
    matrix = np.memmap(stem.with_suffix(".f32"), dtype=np.float32, mode="r", shape=shape)
    with stem.with_suffix(".jsonl").open("rb") as lines:
        start = 0
        while records := [orjson.loads(line) for line in islice(lines, PAGE_SIZE)]:
            yield records, matrix[start : start + len(records)]
            start += len(records)


async def _add(collection: AsyncCollection, records: list[Record], matrix: Any) -> None:
    """Add one page; records with and without a document or metadata go in separate calls
    (Chroma takes either a value for every record of a call or none)."""
    groups: dict[tuple[bool, bool], list[int]] = {}
    for row, record in enumerate(records):
        key = (record["document"] is not None, record["metadata"] is not None)
        groups.setdefault(key, []).append(row)
    for (has_document, has_metadata), rows in groups.items():
        await collection.add(
            ids=[records[r]["id"] for r in rows],
            embeddings=np.asarray(matrix[rows]),
            documents=[records[r]["document"] for r in rows] if has_document else None,
            metadatas=[records[r]["metadata"] for r in rows] if has_metadata else None,
        )
