"""AssemblyAI transcription: the real SDK against a local fake of AssemblyAI's REST API."""

from __future__ import annotations

import asyncio
import json
import math
import shutil

import pytest

from shared.clients.transcription import (
    NO_KEY_MESSAGE,
    AssemblyAITranscriber,
    merge_timed,
)
from shared.config import Settings
from shared.jobs.errors import PermanentJobError, TransientJobError
from shared.materials.chunking import Segment
from shared.storage import file_sha256
from tests.fakes import free_port
from tests.fakes.assemblyai import DEFAULT_SCRIPT, FakeAssemblyAI
from tests.fakes.media import MediaFiles, make_media


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> MediaFiles:
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def fake():
    with FakeAssemblyAI() as server:
        yield server


def settings_for(tmp_path, fake: FakeAssemblyAI | None, **overrides) -> Settings:
    values = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "assemblyai_api_key": fake.api_key if fake else "",
        "assemblyai_base_url": fake.base_url if fake else "http://127.0.0.1:9",
        "provider_timeout_seconds": 5.0,
    } | overrides
    return Settings(**values)


def transcriber(settings: Settings) -> AssemblyAITranscriber:
    return AssemblyAITranscriber(settings, polling_interval=0.02, poll_timeout=10)


async def test_real_sdk_transcribes_ffmpeg_audio_into_timed_segments(tmp_path, fake, media):
    settings = settings_for(tmp_path, fake)
    result = await transcriber(settings).transcribe(media.mp3)

    assert " ".join(s.text for s in result.segments) == DEFAULT_SCRIPT
    assert len(result.segments) >= 1
    assert result.segments[0].start_s == 0.0
    for segment in result.segments:
        assert segment.start_s is not None and segment.end_s is not None
        assert 0 <= segment.start_s < segment.end_s
    starts = [s.start_s or 0.0 for s in result.segments]
    assert starts == sorted(starts)
    assert result.duration_s == math.ceil(len(DEFAULT_SCRIPT.split()) * fake.word_ms / 1000)
    assert result.language == "en"
    assert fake.uploads == [media.mp3.read_bytes()]
    assert fake.count("GET", "/v2/transcript/") >= 2  # queued → processing → completed

    cached = (
        settings.data_dir.resolve() / "cache" / "transcripts" / f"{file_sha256(media.mp3)}.json"
    )
    assert json.loads(cached.read_text())["segments"][0]["start_s"] == 0.0


async def test_video_file_is_transcribed_too(tmp_path, fake, media):
    result = await transcriber(settings_for(tmp_path, fake)).transcribe(media.mp4)
    assert result.segments and fake.uploads == [media.mp4.read_bytes()]


async def test_same_audio_is_never_uploaded_twice(tmp_path, fake, media):
    settings = settings_for(tmp_path, fake)
    first = await transcriber(settings).transcribe(media.mp3)
    requests_after_first = len(fake.requests)

    copy = tmp_path / "renamed-upload.mp3"
    shutil.copyfile(media.mp3, copy)
    again = await transcriber(settings).transcribe(copy)  # a new instance, another name

    assert again == first
    assert len(fake.uploads) == 1
    assert len(fake.requests) == requests_after_first


async def test_concurrent_jobs_with_the_same_audio_upload_once(tmp_path, fake, media):
    settings = settings_for(tmp_path, fake)
    one, two = transcriber(settings), transcriber(settings)
    results = await asyncio.gather(one.transcribe(media.mp3), two.transcribe(media.mp3))
    assert results[0] == results[1]
    assert len(fake.uploads) == 1


async def test_server_errors_are_transient_and_a_retry_resumes_without_reuploading(
    tmp_path, fake, media
):
    settings = settings_for(tmp_path, fake)
    fake.fail(2, path_prefix="/v2/transcript/")  # polling answers 500 twice, then recovers

    with pytest.raises(TransientJobError):
        await transcriber(settings).transcribe(media.mp3)
    with pytest.raises(TransientJobError):
        await transcriber(settings).transcribe(media.mp3)
    result = await transcriber(settings).transcribe(media.mp3)

    assert " ".join(s.text for s in result.segments) == DEFAULT_SCRIPT
    assert len(fake.uploads) == 1  # the retries polled the transcript already submitted
    assert fake.count("POST", "/v2/transcript") == 1
    pending = list((settings.data_dir / "cache" / "transcripts").glob("*.pending.json"))
    assert pending == []


async def test_upload_failures_and_rate_limits_are_transient(tmp_path, fake, media):
    settings = settings_for(tmp_path, fake)
    fake.fail(1, path_prefix="/v2/upload", status=503)
    with pytest.raises(TransientJobError):
        await transcriber(settings).transcribe(media.mp3)
    fake.fail(1, path_prefix="/v2/transcript", status=429)
    with pytest.raises(TransientJobError):
        await transcriber(settings).transcribe(media.mp3)
    assert (await transcriber(settings).transcribe(media.mp3)).segments


async def test_unreachable_service_is_transient(tmp_path, media):
    settings = settings_for(
        tmp_path,
        None,
        assemblyai_api_key="k",
        assemblyai_base_url=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(TransientJobError):
        await transcriber(settings).transcribe(media.mp3)


async def test_transcript_status_error_is_permanent_and_not_cached(tmp_path, fake):
    settings = settings_for(tmp_path, fake)
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("this is a text file pretending to be audio")

    with pytest.raises(PermanentJobError, match=r"could not be transcribed.*does not appear"):
        await transcriber(settings).transcribe(not_audio)

    cache = settings.data_dir / "cache" / "transcripts"
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == []


async def test_rejected_key_is_permanent(tmp_path, fake, media):
    settings = settings_for(tmp_path, fake, assemblyai_api_key="wrong-key")
    with pytest.raises(PermanentJobError, match="refused our API key"):
        await transcriber(settings).transcribe(media.mp3)


async def test_no_key_is_permanent_with_a_clear_message(tmp_path, media):
    settings = settings_for(tmp_path, None)
    with pytest.raises(PermanentJobError) as caught:
        await transcriber(settings).transcribe(media.mp3)
    assert str(caught.value) == NO_KEY_MESSAGE


async def test_cached_transcripts_are_served_without_a_key(tmp_path, fake, media):
    first = await transcriber(settings_for(tmp_path, fake)).transcribe(media.mp3)
    unkeyed = settings_for(tmp_path, None)
    assert await transcriber(unkeyed).transcribe(media.mp3) == first


def test_merge_timed_joins_short_pieces_into_paragraphs():
    pieces = [
        Segment(f"Sentence number {i} is here.", start_s=i * 2.0, end_s=i * 2.0 + 1.5)
        for i in range(40)
    ]
    merged = merge_timed(pieces, max_chars=200, max_span_s=60)
    assert 1 < len(merged) < 40
    assert merged[0].start_s == 0.0 and merged[-1].end_s == 79.5
    assert " ".join(m.text for m in merged) == " ".join(p.text for p in pieces)
    assert all(len(m.text) <= 230 for m in merged)
    assert merge_timed([Segment("  "), Segment("")]) == []
