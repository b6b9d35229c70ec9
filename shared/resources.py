"""The clients a process holds: built at startup (lifespan / on_startup), closed at shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arq.connections import ArqRedis, RedisSettings, create_pool

import shared.models  # noqa: F401 - every mapper must be known before the first flush
from shared.clients.embeddings import Embedder
from shared.clients.llm import LLM, build_embedder, build_llm
from shared.clients.vectorstore import VectorStore
from shared.config import Settings
from shared.db import Database
from shared.jobs.writer import JobStateWriter
from shared.ratelimit import Limiter
from shared.storage import TextFiles, ensure_layout

if TYPE_CHECKING:
    from shared.clients.transcription import AssemblyAITranscriber


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


@dataclass(slots=True)
class Resources:
    settings: Settings
    db: Database
    redis: ArqRedis
    embedder: Embedder
    store: VectorStore
    llm: LLM
    _transcriber: AssemblyAITranscriber | None = field(default=None, repr=False)
    _job_states: JobStateWriter | None = field(default=None, repr=False)
    _text_files: TextFiles | None = field(default=None, repr=False)
    _limiter: Limiter | None = field(default=None, repr=False)
    _extraction_turns: asyncio.Semaphore | None = field(default=None, repr=False)

    @property
    def transcriber(self) -> AssemblyAITranscriber:
        """Built on first use: only workers transcribe, and importing the AssemblyAI SDK
        would add ~30 MB to the API's memory for nothing."""
        if self._transcriber is None:
            from shared.clients.transcription import build_transcriber

            self._transcriber = build_transcriber(self.settings)
        return self._transcriber

    @property
    def job_states(self) -> JobStateWriter:
        """The workers' batched write path for job-state changes (built on first use)."""
        if self._job_states is None:
            self._job_states = JobStateWriter(self.settings, self.db, self.redis)
        return self._job_states

    @property
    def extraction_turns(self) -> asyncio.Semaphore:
        """Held while a job extracts a document's text (`settings.worker_extractions` at once)."""
        if self._extraction_turns is None:
            self._extraction_turns = asyncio.Semaphore(self.settings.worker_extractions)
        return self._extraction_turns

    @property
    def limiter(self) -> Limiter:
        """The API's rate limits, checked in batched round trips (built on first use)."""
        if self._limiter is None:
            self._limiter = Limiter(self.redis)
        return self._limiter

    @property
    def text_files(self) -> TextFiles:
        """Batched writes of text files off the loop (built on first use)."""
        if self._text_files is None:
            self._text_files = TextFiles()
        return self._text_files

    @classmethod
    async def open(cls, settings: Settings, redis: ArqRedis | None = None) -> Resources:
        """Open everything. `redis` is given by arq in a worker; the API creates its own."""
        ensure_layout(settings)
        if redis is None:
            redis = await create_pool(
                redis_settings(settings),
                default_queue_name=settings.queue_name,
                retry=0,
            )
        embedder = build_embedder(settings)
        return cls(
            settings=settings,
            db=Database(settings),
            redis=redis,
            embedder=embedder,
            store=VectorStore(settings.chroma_url, embedder.model_id, redis=redis),
            llm=build_llm(settings),
        )

    async def close(self, *, close_redis: bool = True) -> None:
        await self.llm.aclose()
        close_embedder = getattr(self.embedder, "aclose", None)
        if close_embedder is not None:
            await close_embedder()
        if self._transcriber is not None:
            self._transcriber.close()
        if self._text_files is not None:
            await self._text_files.close()
        if self._limiter is not None:
            await self._limiter.close()
        if self._job_states is not None:
            await self._job_states.close()
        await self.db.dispose()
        if close_redis:
            await self.redis.aclose()
