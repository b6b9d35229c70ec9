"""Step 1 and 2 of the pipeline: get a material's content and turn it into segments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shared.clients.transcription import Transcript
from shared.clients.youtube import fetch_media_url, fetch_youtube
from shared.jobs.errors import PermanentJobError
from shared.materials.chunking import Segment
from shared.materials.extract import extract_document
from shared.materials.ingest import Progress
from shared.materials.models import Material
from shared.materials.sniff import FileKind, sniff_file
from shared.materials.webpage import fetch_web_page, probe_content_type
from shared.resources import Resources

T = TypeVar("T")
DOCUMENT_KINDS = frozenset({FileKind.PDF, FileKind.DOCX, FileKind.PPTX})
MEDIA_KINDS = frozenset({FileKind.AUDIO, FileKind.VIDEO})
TEXT_KINDS = frozenset({FileKind.TEXT, FileKind.MARKDOWN, "text"})
PAGE_PROGRESS_INTERVAL_S = 0.5


@dataclass(slots=True)
class Acquired:
    segments: list[Segment]
    page_count: int | None = None
    duration_s: float | None = None
    acquisition: str | None = None
    title: str | None = None
    file_path: str | None = None


def _path(resources: Resources, relative: str | None) -> Path:
    if not relative:
        raise PermanentJobError("The material has no stored content.")
    path = resources.settings.data_dir.resolve() / relative
    if not path.exists():
        raise PermanentJobError("The material's file is missing.")
    return path


async def _with_page_progress(
    work: Callable[[Callable[[int, int], None]], T], progress: Progress, verb: str
) -> T:
    """Run CPU-bound `work(on_page)` in a thread, reporting "extracting page 12/80"."""
    state = [0, 0]

    def on_page(done: int, total: int) -> None:
        state[0], state[1] = done, total

    task = asyncio.ensure_future(asyncio.to_thread(work, on_page))
    while not task.done():
        await asyncio.wait({task}, timeout=PAGE_PROGRESS_INTERVAL_S)
        done, total = state
        if total and not task.done():
            await progress(5 + int(15 * done / total), f"{verb} page {done}/{total}")
    return task.result()


async def _transcribe(resources: Resources, path: Path, progress: Progress) -> Transcript:
    await progress(8, "transcribing")
    return await resources.transcriber.transcribe(path)


def _from_transcript(transcript: Transcript, acquisition: str) -> Acquired:
    return Acquired(
        segments=transcript.segments,
        duration_s=transcript.duration_s,
        acquisition=acquisition,
    )


async def _acquire_file(resources: Resources, material: Material, progress: Progress) -> Acquired:
    path = _path(resources, material.file_path)
    kind = FileKind(material.kind)
    if kind in TEXT_KINDS:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")
        return Acquired(segments=[Segment(text)])
    if kind in DOCUMENT_KINDS:
        if resources.extraction_turns.locked():
            await progress(4, "waiting for a free extractor")
        async with resources.extraction_turns:
            document = await _with_page_progress(
                lambda on_page: extract_document(path, kind, on_page), progress, "extracting"
            )
        return Acquired(segments=document.segments, page_count=document.page_count)
    return _from_transcript(await _transcribe(resources, path, progress), "upload")


async def _acquire_youtube(
    resources: Resources, material: Material, progress: Progress
) -> Acquired:
    assert material.source_ref
    await progress(3, "downloading")
    media_dir = resources.settings.data_dir.resolve() / "uploads" / "media"
    fetched = await fetch_youtube(material.source_ref, media_dir, resources.settings)
    if fetched.segments is not None:
        return Acquired(
            segments=fetched.segments,
            duration_s=fetched.duration_s,
            acquisition="captions",
            title=fetched.title,
        )
    assert fetched.audio_path is not None
    acquired = _from_transcript(await _transcribe(resources, fetched.audio_path, progress), "audio")
    acquired.title = fetched.title
    acquired.duration_s = acquired.duration_s or fetched.duration_s
    acquired.file_path = str(fetched.audio_path.relative_to(resources.settings.data_dir.resolve()))
    return acquired


async def _acquire_link(resources: Resources, material: Material, progress: Progress) -> Acquired:
    assert material.source_ref
    await progress(3, "downloading")
    content_type = await probe_content_type(material.source_ref, resources.settings)
    if not content_type.startswith(("audio/", "video/", "application/octet-stream")):
        page = await fetch_web_page(material.source_ref, resources.settings)
        return Acquired(segments=[Segment(page.text)], acquisition="web_page", title=page.title)
    media_dir = resources.settings.data_dir.resolve() / "uploads" / "media"
    path = await fetch_media_url(material.source_ref, media_dir, resources.settings)
    sniffed = await asyncio.to_thread(sniff_file, path, None)
    if sniffed.kind not in MEDIA_KINDS:
        path.unlink(missing_ok=True)
        raise PermanentJobError("The link is neither a web page nor an audio or video file.")
    acquired = _from_transcript(await _transcribe(resources, path, progress), "download")
    acquired.file_path = str(path.relative_to(resources.settings.data_dir.resolve()))
    return acquired


async def acquire(resources: Resources, material: Material, progress: Progress) -> Acquired:
    """Turn any material into segments that keep their page or time, for citations."""
    if material.kind == "youtube":
        return await _acquire_youtube(resources, material, progress)
    if material.kind == "web":
        return await _acquire_link(resources, material, progress)
    return await _acquire_file(resources, material, progress)
