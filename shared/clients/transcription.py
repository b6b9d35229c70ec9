"""Speech to timed text through AssemblyAI, cached by content hash.

The `assemblyai` SDK blocks (it sleeps while polling), so every call runs in a worker
thread. Each transcriber holds its own SDK `Client` built from our settings: the SDK's
module-global `aai.settings` is never touched, so two transcribers with different keys or
base URLs can run side by side.

A transcript is stored under `<data_dir>/cache/transcripts/<sha256>.json` (written
atomically), so the same audio is never paid for twice. While AssemblyAI works on a file,
`<sha256>.pending.json` remembers the transcript id: a retried job (after a 5xx while
polling, or a worker restart) resumes polling that transcript instead of uploading again.
A file lock per hash keeps two jobs with the same audio from both uploading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import assemblyai as aai
import httpx

from shared.config import Settings
from shared.jobs.errors import JobError, PermanentJobError, TransientJobError
from shared.materials.chunking import Segment
from shared.storage import file_sha256, transcripts_dir

log = logging.getLogger(__name__)

CACHE_VERSION = 1
NO_KEY_MESSAGE = "Audio and video need transcription, and no ASSEMBLYAI_API_KEY is set."
SPEECH_MODELS = ["universal-3-pro", "universal-2"]
_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


@dataclass(frozen=True, slots=True)
class Transcript:
    segments: list[Segment]
    duration_s: float | None = None
    language: str | None = None
    source_id: str | None = field(default=None, compare=False)


class Transcriber(Protocol):
    async def transcribe(self, path: Path) -> Transcript: ...


# ---------------------------------------------------------------- timed segments


def merge_timed(
    segments: Iterable[Segment], *, max_chars: int = 600, max_span_s: float = 60.0
) -> list[Segment]:
    """Join short timed pieces (sentences, caption cues) into paragraph-sized segments.

    A paragraph closes at a sentence end once it holds a third of `max_chars`, or as soon
    as it reaches `max_chars` characters or spans `max_span_s` seconds.
    """
    merged: list[Segment] = []
    texts: list[str] = []
    start: float | None = None
    end: float | None = None

    def flush() -> None:
        nonlocal texts, start, end
        if texts:
            merged.append(Segment(" ".join(texts), start_s=start, end_s=end))
        texts, start, end = [], None, None

    for segment in segments:
        text = " ".join(segment.text.split())
        if not text:
            continue
        if start is None:
            start = segment.start_s
        end = segment.end_s if segment.end_s is not None else end
        texts.append(text)
        size = sum(len(t) + 1 for t in texts)
        span = (end - start) if start is not None and end is not None else 0.0
        sentence_done = text.endswith(_SENTENCE_END) and size >= max_chars // 3
        if sentence_done or size >= max_chars or span >= max_span_s:
            flush()
    flush()
    return merged


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value / 1000.0, 3)


def _from_timed(items: Sequence[Any]) -> list[Segment]:
    """Utterances, sentences or words (anything with text/start/end in ms) to segments."""
    return merge_timed(
        Segment(item.text, start_s=_ms(item.start), end_s=_ms(item.end)) for item in items
    )


def _sentences_from_words(words: Sequence[aai.Word]) -> list[Segment]:
    pieces: list[Segment] = []
    current: list[aai.Word] = []
    for word in words:
        current.append(word)
        if word.text.endswith(_SENTENCE_END):
            pieces.append(_words_segment(current))
            current = []
    if current:
        pieces.append(_words_segment(current))
    return merge_timed(pieces)


def _words_segment(words: list[aai.Word]) -> Segment:
    return Segment(
        " ".join(w.text for w in words), start_s=_ms(words[0].start), end_s=_ms(words[-1].end)
    )


# ---------------------------------------------------------------- cache files


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _transcript_to_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "version": CACHE_VERSION,
        "transcript_id": transcript.source_id,
        "duration_s": transcript.duration_s,
        "language": transcript.language,
        "segments": [
            {"text": s.text, "start_s": s.start_s, "end_s": s.end_s} for s in transcript.segments
        ],
    }


def _transcript_from_json(data: dict[str, Any]) -> Transcript | None:
    if data.get("version") != CACHE_VERSION:
        return None
    try:
        segments = [
            Segment(str(s["text"]), start_s=s.get("start_s"), end_s=s.get("end_s"))
            for s in data["segments"]
        ]
    except (KeyError, TypeError):
        return None
    return Transcript(
        segments=segments,
        duration_s=data.get("duration_s"),
        language=data.get("language"),
        source_id=data.get("transcript_id"),
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------- errors


def map_assemblyai_error(exc: BaseException) -> JobError:
    """Turn an SDK or transport failure into an error the job wrapper understands."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return TransientJobError("The transcription service timed out; will try again.")
    if isinstance(exc, httpx.TransportError):
        return TransientJobError("The transcription service could not be reached; will try again.")
    if isinstance(exc, aai.types.AssemblyAIError):
        status = exc.status_code
        if status is None or status == 429 or status >= 500:
            return TransientJobError(
                "The transcription service is busy or unavailable; will try again."
            )
        if status in (401, 403):
            return PermanentJobError("The transcription service refused our API key.")
        return PermanentJobError(
            f"The transcription service could not accept this file ({status}): {_short(str(exc))}"
        )
    return TransientJobError(f"Transcription failed unexpectedly: {_short(str(exc))}")


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- the transcriber


class AssemblyAITranscriber:
    """Transcribe local audio/video files with AssemblyAI; results cached by content hash."""

    def __init__(
        self,
        settings: Settings,
        *,
        polling_interval: float = 3.0,
        poll_timeout: float | None = None,
    ) -> None:
        self._api_key = settings.assemblyai_api_key
        self._base_url = settings.assemblyai_base_url.rstrip("/")
        self._timeout = settings.provider_timeout_seconds
        self._polling_interval = polling_interval
        self._poll_timeout = poll_timeout or float(settings.job_timeout_seconds)
        self.cache_dir = transcripts_dir(settings)
        self._client: aai.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._api_key)

    async def transcribe(self, path: Path) -> Transcript:
        """Timed segments for the speech in `path`; the cache answers for audio seen before."""
        return await asyncio.to_thread(self._transcribe_sync, path)

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.http_client.close()
                self._client = None

    def cache_path(self, sha: str) -> Path:
        return self.cache_dir / f"{sha}.json"

    def _transcribe_sync(self, path: Path) -> Transcript:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            sha = file_sha256(path)
        except FileNotFoundError as exc:
            raise PermanentJobError("The audio file to transcribe is missing.") from exc
        cached = self._cached(sha)
        if cached is not None:
            return cached
        with _file_lock(self.cache_dir / f"{sha}.lock"):
            cached = self._cached(sha)
            if cached is not None:
                return cached
            try:
                transcript = self._fetch(sha, path)
            except Exception as exc:
                raise map_assemblyai_error(exc) from exc
            _write_json_atomic(self.cache_path(sha), _transcript_to_json(transcript))
            (self.cache_dir / f"{sha}.pending.json").unlink(missing_ok=True)
            return transcript

    def _cached(self, sha: str) -> Transcript | None:
        data = _read_json(self.cache_path(sha))
        return _transcript_from_json(data) if data is not None else None

    def _sdk_client(self) -> aai.Client:
        """This transcriber's own SDK client (the SDK's global `aai.settings` is untouched)."""
        if not self._api_key:
            raise PermanentJobError(NO_KEY_MESSAGE)
        with self._client_lock:
            if self._client is None:
                sdk_settings = aai.Settings(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    http_timeout=self._timeout,
                    polling_interval=self._polling_interval,
                )
                self._client = aai.Client(settings=sdk_settings)
            return self._client

    def _fetch(self, sha: str, path: Path) -> Transcript:
        client = self._sdk_client()
        remote = self._resume(client, sha)
        if remote is None:
            remote = self._submit(client, sha, path)
            remote.wait_for_completion(poll_timeout=self._poll_timeout)
        if remote.status == aai.TranscriptStatus.error:
            (self.cache_dir / f"{sha}.pending.json").unlink(missing_ok=True)
            reason = _short(remote.error or "unknown reason")
            raise PermanentJobError(f"The audio could not be transcribed: {reason}")
        return Transcript(
            segments=self._segments(remote),
            duration_s=float(remote.audio_duration) if remote.audio_duration else None,
            language=_language(remote.language_code),
            source_id=remote.id,
        )

    def _resume(self, client: aai.Client, sha: str) -> aai.Transcript | None:
        pending = _read_json(self.cache_dir / f"{sha}.pending.json")
        transcript_id = pending.get("transcript_id") if pending else None
        if not isinstance(transcript_id, str):
            return None
        log.info("resuming transcript %s for %s", transcript_id, sha[:12])
        remote = aai.Transcript(transcript_id=transcript_id, client=client)
        try:
            return remote.wait_for_completion(poll_timeout=self._poll_timeout)
        except aai.types.TranscriptError as exc:
            if exc.status_code not in (400, 404):
                raise
        log.info("transcript %s is gone; submitting the audio again", transcript_id)
        (self.cache_dir / f"{sha}.pending.json").unlink(missing_ok=True)
        return None

    def _submit(self, client: aai.Client, sha: str, path: Path) -> aai.Transcript:
        config = aai.TranscriptionConfig(speech_models=SPEECH_MODELS, language_detection=True)
        transcriber = aai.Transcriber(client=client, config=config, max_workers=1)
        remote = transcriber.submit(path)
        if remote.id:
            _write_json_atomic(self.cache_dir / f"{sha}.pending.json", {"transcript_id": remote.id})
        return remote

    def _segments(self, remote: aai.Transcript) -> list[Segment]:
        if remote.utterances:
            return _from_timed(remote.utterances)
        try:
            sentences = remote.get_sentences()
        except aai.types.TranscriptError as exc:
            if exc.status_code is None or exc.status_code == 429 or exc.status_code >= 500:
                raise
            sentences = []
        if sentences:
            return _from_timed(sentences)
        if remote.words:
            return _sentences_from_words(remote.words)
        text = (remote.text or "").strip()
        return [Segment(text)] if text else []


def _language(code: object) -> str | None:
    if code is None:
        return None
    value = getattr(code, "value", code)
    return str(value) or None


def build_transcriber(settings: Settings) -> AssemblyAITranscriber:
    """The transcriber a process holds (built at startup; it fails only when used unkeyed)."""
    return AssemblyAITranscriber(settings, polling_interval=settings.assemblyai_poll_seconds)
