"""Uploads and links: files land on disk under generated names, typed by their content."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession

from shared.clients.urlguard import check_url
from shared.clients.youtube_urls import is_youtube_url
from shared.config import Settings
from shared.errors import PayloadTooLarge
from shared.ids import new_id
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.materials.models import Material, MaterialStatus
from shared.materials.service import PROCESS_MATERIAL
from shared.materials.sniff import FileKind, UnsupportedFile, sniff_file

MEDIA_KINDS = frozenset({FileKind.AUDIO, FileKind.VIDEO})
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rejected:
    filename: str
    message: str


def safe_title(filename: str | None, fallback: str = "Untitled") -> str:
    """The client's file name, reduced to a display title (it is never used as a path)."""
    if not filename:
        return fallback
    name = PureWindowsPath(PurePosixPath(filename).name).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    cleaned = "".join(ch for ch in stem if ch.isprintable()).strip()
    return cleaned[:300] or fallback


def _copy_limited(source: BinaryIO, target: Path, limit: int) -> int:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise PayloadTooLarge(f"The file is larger than {limit // (1024 * 1024)} MB.")
            out.write(chunk)
    return written


async def store_upload(
    session: AsyncSession,
    settings: Settings,
    user_id: str,
    source: BinaryIO,
    filename: str | None,
) -> tuple[Material, Job] | Rejected:
    """Copy one uploaded file under a generated name, type it by content, and queue it."""
    root = settings.data_dir.resolve() / "uploads"
    incoming = root / "incoming" / new_id()
    incoming.parent.mkdir(parents=True, exist_ok=True)
    try:
        size = await asyncio.to_thread(_copy_limited, source, incoming, settings.max_upload_bytes)
        sniffed = await asyncio.to_thread(sniff_file, incoming, filename)
    except UnsupportedFile as exc:
        incoming.unlink(missing_ok=True)
        return Rejected(filename or "", str(exc))
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    material = Material(
        user_id=user_id,
        title=safe_title(filename),
        kind=sniffed.kind.value,
        source="upload",
        acquisition="upload",
        original_filename=(filename or "")[:300] or None,
        byte_size=size,
        status=MaterialStatus.PENDING,
    )
    session.add(material)
    await session.flush()
    folder = "media" if sniffed.kind in MEDIA_KINDS else "documents"
    relative = f"uploads/{folder}/{material.id}.{sniffed.extension}"
    final = settings.data_dir.resolve() / relative
    await asyncio.to_thread(shutil.move, incoming, final)
    material.file_path = relative
    return material, _queue(session, material)


def _queue(session: AsyncSession, material: Material) -> Job:
    job = jobs.create_job(session, material.user_id, PROCESS_MATERIAL, {"material_id": material.id})
    material.job_id = job.id
    return job


async def create_url_material(
    session: AsyncSession, settings: Settings, user_id: str, url: str, title: str | None
) -> tuple[Material, Job]:
    """A link: refused at the door when plainly internal; fetched by the worker."""
    target = check_url(url, settings.fetch_allowlist)
    youtube = is_youtube_url(url)
    material = Material(
        user_id=user_id,
        title=(title or "").strip()[:300] or (target.host if not youtube else "YouTube video"),
        kind="youtube" if youtube else "web",
        source="url",
        source_ref=url,
        status=MaterialStatus.PENDING,
    )
    session.add(material)
    await session.flush()
    job = _queue(session, material)
    await session.flush()
    return material, job
