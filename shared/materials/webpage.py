"""Fetch a plain web page through the URL guard and keep its main text."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import httpx
import trafilatura

from shared.clients.urlguard import HostNotFound, UrlRefused, guarded_client
from shared.config import Settings
from shared.jobs.errors import PermanentJobError, TransientJobError

MAX_HTML_BYTES: Final = 10 * 1024 * 1024
HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
ACCEPT: Final = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.5"


@dataclass(frozen=True, slots=True)
class WebPage:
    title: str | None
    text: str
    final_url: str


def media_type(response: httpx.Response) -> str:
    """The response's media type, lower-case, without parameters ("" when absent)."""
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise TransientJobError(f"The site is busy or failing (HTTP {status}); trying again later.")
    if status in (404, 410):
        raise PermanentJobError(f"The page was not found ({status}).")
    if status in (401, 403):
        raise PermanentJobError(
            f"The page needs a login or refused access ({status}); use a public link."
        )
    if status < 400:
        raise PermanentJobError(
            f"The page redirected somewhere it could not be followed ({status})."
        )
    raise PermanentJobError(f"The site refused the request (HTTP {status}).")


def _fetch_error(exc: Exception) -> Exception:
    """Map what the guarded client raises to a job error a learner can read."""
    if isinstance(exc, UrlRefused | HostNotFound):
        return PermanentJobError(exc.message)
    if isinstance(exc, httpx.TooManyRedirects):
        return PermanentJobError("The page redirects too many times.")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentJobError("The page redirected to an address that cannot be fetched.")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return TransientJobError("The site took too long to answer; trying again later.")
    return TransientJobError("The site could not be reached; trying again later.")


_FETCH_ERRORS: Final = (UrlRefused, HostNotFound, httpx.HTTPError, httpx.InvalidURL, TimeoutError)


async def _download(url: str, settings: Settings, limit: int) -> tuple[bytes, str, str, str]:
    """GET url; returns (body, media type, charset or "", final url)."""
    async with (
        guarded_client(settings) as client,
        client.stream("GET", url, headers={"Accept": ACCEPT}) as response,
    ):
        _raise_for_status(response)
        kind = media_type(response)
        if kind not in HTML_TYPES and not kind.startswith("text/"):
            raise PermanentJobError(
                f"The link is not a web page (it serves {kind or 'an unknown type'})."
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PermanentJobError(_too_large(limit))
        body = bytearray()
        # Counted after decompression, so a small compressed bomb is stopped too
        # (at most one decoded chunk past the limit is ever held).
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise PermanentJobError(_too_large(limit))
        return bytes(body), kind, response.charset_encoding or "", str(response.url)


def _too_large(limit: int) -> str:
    return f"The page is larger than {limit // (1024 * 1024)} MB and was not imported."


def _extract(data: bytes, kind: str, charset: str, final_url: str) -> tuple[str | None, str]:
    """CPU-bound: main text and title of an HTML page (or the text of a text file)."""
    if kind not in HTML_TYPES:
        return None, data.decode(charset or "utf-8", errors="replace").strip()
    html: str | bytes = data.decode(charset, errors="replace") if charset else data
    document = trafilatura.bare_extraction(
        html,
        url=final_url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
    )
    if document is None:
        return None, ""
    if isinstance(document, dict):  # as_dict=True was not asked for, but be safe
        title, text = document.get("title"), document.get("text")
    else:
        title, text = document.title, document.text
    return (str(title).strip() or None) if title else None, str(text or "").strip()


async def fetch_web_page(url: str, settings: Settings) -> WebPage:
    """Fetch `url` through the URL guard and return its title and main text.

    Raises PermanentJobError (not a page, not found, refused address, no main text,
    over 10 MB) or TransientJobError (timeouts, connection failures, 408/429/5xx).
    """
    limit = min(MAX_HTML_BYTES, settings.max_fetch_bytes)
    try:
        async with asyncio.timeout(settings.fetch_timeout_seconds):
            data, kind, charset, final_url = await _download(url, settings, limit)
    except _FETCH_ERRORS as exc:
        raise _fetch_error(exc) from exc
    title, text = await asyncio.to_thread(_extract, data, kind, charset, final_url)
    if not text:
        raise PermanentJobError("No readable text was found on this page.")
    return WebPage(title=title, text=text, final_url=final_url)


async def probe_content_type(url: str, settings: Settings) -> str:
    """The media type a link serves ("text/html", "audio/mpeg", "" when unknown).

    HEAD first; when the site refuses HEAD (405, 403 on signed links, ...) a GET is
    started and closed as soon as its headers arrive. Errors map as in fetch_web_page.
    """
    try:
        async with asyncio.timeout(settings.fetch_timeout_seconds):
            async with guarded_client(settings) as client:
                head = await client.head(url)
                if head.status_code < 300 and media_type(head):
                    return media_type(head)
                async with client.stream("GET", url) as response:
                    _raise_for_status(response)
                    return media_type(response)
    except _FETCH_ERRORS as exc:
        raise _fetch_error(exc) from exc
