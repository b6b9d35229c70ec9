"""The URL guard: hostile URLs in every spelling, redirect hops, connect-time checks,
thread-local resolution guarding, and the web page fetcher on top of it. No internet:
local servers on 127.0.0.1, reached only through the allowlist."""

from __future__ import annotations

import ipaddress
import socket
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shared.clients import urlguard
from shared.clients.urlguard import (
    PRIVATE_MESSAGE,
    ResolutionRefused,
    UrlRefused,
    check_url,
    guarded_client,
    guarded_resolution,
    is_forbidden_address,
    resolve_and_check,
    resolve_host,
)
from shared.config import Settings
from shared.errors import InvalidInput
from shared.jobs.errors import PermanentJobError, TransientJobError
from shared.materials.webpage import fetch_web_page, probe_content_type

HOSTILE = [
    # schemes
    "file:///etc/passwd",
    "gopher://example.com/",
    "ftp://example.com/file",
    "javascript:alert(1)",
    "dict://example.com:11211/",
    # loopback, any spelling
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://localhost./",
    "http://admin.localhost/",
    "http://127.0.0.1/",
    "http://127.0.0.1./",
    "http://127.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.000.000.001/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    # unspecified
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    # link-local, the cloud metadata service
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    # private, shared (CGNAT), multicast, reserved, benchmark, ULA
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    # credentials, malformed, odd ports, parser-differential bait
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "http://example.com\\@127.0.0.1/",
    "http://exa mple.com/",
    "http:///no-host",
    "http://",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://999999999999/",
    "",
]


def settings_for(*allow: str, timeout: float = 5.0) -> Settings:
    return Settings(fetch_allowlist=list(allow), fetch_timeout_seconds=timeout)


# ------------------------------------------------------------------ local fake sites

ARTICLE = (
    "<html><head><title>Photosynthesis basics</title></head><body>"
    "<nav>Home | About | Contact</nav><article><h1>Photosynthesis basics</h1>"
    + "<p>Plants convert light energy into chemical energy stored in glucose. " * 8
    + "</p><p>Chlorophyll absorbs mostly blue and red light, reflecting green. " * 8
    + "</p></article><footer>Copyright 2024</footer></body></html>"
)


PLAIN = "Mitochondria make ATP — fast.\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    closed_port = 0  # set by the fixture: a local port nobody listens on

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", Location=location)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        port = self.server.server_port  # type: ignore[attr-defined]
        if path == "/article":
            self._send(200, ARTICLE.encode(), "text/html; charset=utf-8")
        elif path == "/host":
            self._send(200, (self.headers.get("Host") or "").encode(), "text/plain")
        elif path == "/plain":
            self._send(200, PLAIN.encode(), "text/plain; charset=utf-8")
        elif path == "/empty":
            self._send(200, b"<html><body><div></div></body></html>", "text/html")
        elif path == "/binary":
            self._send(200, b"\x00\x01\x02" * 100, "application/octet-stream")
        elif path == "/boom":
            self._send(503, b"busy", "text/plain")
        elif path == "/gone":
            self._send(410, b"gone", "text/html")
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65536 + b"</p>"
            try:
                for _ in range(11 * 1024 * 1024 // len(chunk) + 2):
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/redirect-ok":
            self._redirect("/article")
        elif path == "/redirect-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect-other-port":
            self._redirect(f"http://127.0.0.1:{self.closed_port}/article")
        elif path == "/redirect-decimal-other-port":
            self._redirect(f"http://2130706433:{self.closed_port}/article")
        elif path == "/redirect-localhost":
            self._redirect(f"http://localhost:{port}/article")
        elif path == "/redirect-file":
            self._redirect("file:///etc/passwd")
        elif path == "/redirect-loop":
            self._redirect("/redirect-loop")
        else:
            self._send(404, b"<html><body>Not here</body></html>", "text/html")


@dataclass
class Site:
    port: int
    closed_port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allow(self) -> str:
        return f"127.0.0.1:{self.port}"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    Handler.closed_port = _unused_port()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(port=int(server.server_address[1]), closed_port=Handler.closed_port)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener() -> Iterator[int]:
    """A bare listening socket: connections succeed (the kernel accepts them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


# --------------------------------------------------------------------- check_url


@pytest.mark.parametrize("url", HOSTILE)
def test_check_url_refuses_hostile_urls(url: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url)
    assert isinstance(refused.value, InvalidInput)  # answers 422 at the door
    assert refused.value.message and "Traceback" not in refused.value.message


@pytest.mark.parametrize("url", HOSTILE)
async def test_resolve_and_check_refuses_hostile_urls(url: str) -> None:
    with pytest.raises(UrlRefused):
        await resolve_and_check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://localhost/",
    ],
)
def test_private_targets_get_the_learner_message(url: str) -> None:
    with pytest.raises(UrlRefused, match="private network"):
        check_url(url)


def test_scheme_and_credential_messages_are_specific() -> None:
    with pytest.raises(UrlRefused, match=r"http:// and https://"):
        check_url("file:///etc/passwd")
    with pytest.raises(UrlRefused, match="user name or password"):
        check_url("https://user:pass@example.com/")


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://93.184.216.34/", "93.184.216.34", 80),
        ("https://93.184.216.34:8443/x?y=1", "93.184.216.34", 8443),
        ("https://[2606:4700::1111]/", "2606:4700::1111", 443),
        ("https://Example.COM/path", "example.com", 443),
        ("https://bücher.de/", "xn--bcher-kva.de", 443),
        ("https://xn--bcher-kva.de/", "xn--bcher-kva.de", 443),
        ("http://example.com./", "example.com", 80),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "www.youtube.com", 443),
    ],
)
def test_public_targets_pass_the_check(url: str, host: str, port: int) -> None:
    target = check_url(url)
    assert (target.host, target.port, target.allowlisted) == (host, port, False)
    # the transport re-checks httpx's rendering of the URL on every hop: same verdict
    assert check_url(str(httpx.URL(url))).host == host


async def test_public_ip_literal_resolves_without_network() -> None:
    assert await resolve_and_check("http://93.184.216.34/") == [
        ipaddress.ip_address("93.184.216.34")
    ]


async def test_allowlisted_local_server_passes_and_only_that_port() -> None:
    allow = ["127.0.0.1:8765"]
    assert check_url("http://127.0.0.1:8765/x", allow).allowlisted
    assert await resolve_and_check("http://127.0.0.1:8765/x", allow) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    # the allowlist is by address, so another spelling of it is the same entry
    assert check_url("http://2130706433:8765/", allow).allowlisted
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.1:8766/", allow)
    with pytest.raises(UrlRefused):
        await resolve_and_check("http://10.0.0.1:8765/", allow)
    assert check_url("http://[::1]:9000/", ["[::1]:9000"]).allowlisted


def test_malformed_allowlist_entries_fail_loudly() -> None:
    with pytest.raises(ValueError, match="host:port"):
        check_url("http://example.com/", ["127.0.0.1"])


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
        ("::ffff:93.184.216.34", False),
        ("127.0.0.1", True),
        ("::ffff:10.1.2.3", True),
        ("2002:a00:1::", True),  # 6to4 wrapping 10.0.0.1
        ("2002:5db8:d822::", True),  # 6to4 (deprecated tunnel), even around a public address
        ("64:ff9b::7f00:1", True),  # NAT64 wrapping 127.0.0.1
        ("100.127.255.254", True),
        ("192.0.2.1", True),  # documentation range
        ("fec0::1", True),  # deprecated site-local
    ],
)
def test_address_rule(address: str, forbidden: bool) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden


async def test_names_are_judged_by_what_they_resolve_to() -> None:
    # "localhost" comes from /etc/hosts: a real resolution, no network needed
    with pytest.raises(UrlRefused, match="private network"):
        await resolve_host("localhost", 80)
    assert await resolve_host("localhost", 80, ["localhost:80"])


async def test_any_forbidden_address_among_several_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    monkeypatch.setattr(urlguard, "_system_getaddrinfo", fake)
    with pytest.raises(UrlRefused):
        await resolve_and_check("https://mixed.example/")


async def test_unknown_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(urlguard, "_system_getaddrinfo", fake)
    with pytest.raises(urlguard.HostNotFound, match=r"typo\.example could not be found"):
        await resolve_and_check("https://typo.example/")


# ---------------------------------------------------------------- guarded client


@pytest.mark.parametrize("url", [u for u in HOSTILE if u.startswith("http")])
async def test_guarded_client_refuses_before_connecting(url: str) -> None:
    async with guarded_client(settings_for()) as client:
        with pytest.raises((UrlRefused, httpx.InvalidURL, httpx.UnsupportedProtocol)):
            await client.get(url)


async def test_guarded_client_reaches_an_allowlisted_server(site: Site) -> None:
    async with guarded_client(settings_for(site.allow)) as client:
        response = await client.get(f"{site.base}/redirect-ok")
    assert response.status_code == 200
    assert str(response.url) == f"{site.base}/article"
    assert [r.status_code for r in response.history] == [302]


@pytest.mark.parametrize(
    "path",
    [
        "/redirect-metadata",
        "/redirect-other-port",
        "/redirect-decimal-other-port",
        "/redirect-localhost",
        "/redirect-file",
    ],
)
async def test_redirect_from_allowed_host_to_refused_one(site: Site, path: str) -> None:
    async with guarded_client(settings_for(site.allow)) as client:
        with pytest.raises((UrlRefused, httpx.UnsupportedProtocol)):
            await client.get(site.base + path)


async def test_redirect_limit(site: Site) -> None:
    async with guarded_client(settings_for(site.allow)) as client:
        with pytest.raises(httpx.TooManyRedirects):
            await client.get(f"{site.base}/redirect-loop")


async def test_connect_time_check_uses_the_resolved_address(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that passes check_url but resolves inside is refused at connect time;
    when allowed, the connection goes to the checked address, with the name as Host."""
    lookups: list[str] = []

    async def fake(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(urlguard, "_system_getaddrinfo", fake)
    url = f"http://intranet.example:{site.port}/host"
    check_url(url)  # a plain name: nothing to see without resolving it
    async with guarded_client(settings_for()) as client:
        with pytest.raises(UrlRefused, match="private network"):
            await client.get(url)
    async with guarded_client(settings_for(site.allow)) as client:
        response = await client.get(url)
    assert response.text == f"intranet.example:{site.port}"
    # resolved once per connection, by the guard: nothing re-resolves after the check
    assert lookups == ["intranet.example", "intranet.example"]


# ------------------------------------------------------------- guarded_resolution


def _in_thread(fn):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=30)


def test_guarded_resolution_refuses_inside_and_not_outside(listener: int) -> None:
    def connect_guarded() -> None:
        with guarded_resolution(), socket.create_connection(("127.0.0.1", listener), 5):
            pass

    with pytest.raises(ResolutionRefused) as refused:
        _in_thread(connect_guarded)
    assert isinstance(refused.value, OSError)
    assert isinstance(refused.value, UrlRefused)
    # outside the block, and in threads that never entered it, nothing changes
    _in_thread(lambda: socket.create_connection(("127.0.0.1", listener), 5).close())
    socket.create_connection(("127.0.0.1", listener), 5).close()


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "localhost"])
def test_guarded_resolution_refuses_every_spelling(listener: int, host: str) -> None:
    def connect() -> None:
        with guarded_resolution():
            socket.create_connection((host, listener), 5).close()

    with pytest.raises(UrlRefused):
        _in_thread(connect)


def test_guarded_resolution_lets_the_allowlist_through(listener: int) -> None:
    def connect() -> None:
        with guarded_resolution([f"127.0.0.1:{listener}"]) as guard:
            socket.create_connection(("127.0.0.1", listener), 5).close()
        assert guard.refused == []

    _in_thread(connect)


def test_guarded_resolution_is_per_thread(listener: int) -> None:
    inside = threading.Event()
    release = threading.Event()

    def hold_guard() -> None:
        with guarded_resolution():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold_guard)
    holder.start()
    try:
        assert inside.wait(10)
        _in_thread(lambda: socket.create_connection(("127.0.0.1", listener), 5).close())
    finally:
        release.set()
        holder.join()


def test_guarded_resolution_turns_wrapped_library_errors_into_refusals(site: Site) -> None:
    """urllib wraps the OSError in URLError and follows the redirect itself."""

    def fetch(path: str) -> bytes:
        with guarded_resolution([site.allow]), urllib.request.urlopen(site.base + path) as r:
            return bytes(r.read())

    assert b"Photosynthesis" in _in_thread(lambda: fetch("/redirect-ok"))
    with pytest.raises(UrlRefused) as refused:
        _in_thread(lambda: fetch("/redirect-other-port"))
    assert refused.value.message == PRIVATE_MESSAGE


def test_guarded_resolution_protects_yt_dlp(site: Site) -> None:
    yt_dlp = pytest.importorskip("yt_dlp")

    def extract(path: str) -> None:
        options = {"quiet": True, "no_warnings": True, "retries": 0, "socket_timeout": 5}
        with guarded_resolution([site.allow]), yt_dlp.YoutubeDL(options) as ydl:
            ydl.extract_info(site.base + path, download=False)

    with pytest.raises(UrlRefused):
        _in_thread(lambda: extract("/redirect-metadata"))


# ------------------------------------------------------------------- web pages


async def test_fetch_web_page_extracts_title_and_main_text(site: Site) -> None:
    page = await fetch_web_page(f"{site.base}/redirect-ok", settings_for(site.allow))
    assert page.title == "Photosynthesis basics"
    assert "Chlorophyll absorbs mostly blue and red light" in page.text
    assert "Home | About" not in page.text
    assert page.final_url == f"{site.base}/article"


async def test_fetch_plain_text(site: Site) -> None:
    page = await fetch_web_page(f"{site.base}/plain", settings_for(site.allow))
    assert page.text == PLAIN.strip()


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/missing", PermanentJobError, r"not found \(404\)"),
        ("/gone", PermanentJobError, r"not found \(410\)"),
        ("/binary", PermanentJobError, "not a web page"),
        ("/empty", PermanentJobError, "No readable text"),
        ("/big", PermanentJobError, "larger than 10 MB"),
        ("/redirect-metadata", PermanentJobError, "private network"),
        ("/redirect-other-port", PermanentJobError, "private network"),
        ("/redirect-loop", PermanentJobError, "too many times"),
        ("/boom", TransientJobError, r"HTTP 503"),
    ],
)
async def test_fetch_web_page_errors(site: Site, path: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        await fetch_web_page(site.base + path, settings_for(site.allow))


async def test_fetch_web_page_refuses_private_and_unreachable(site: Site) -> None:
    with pytest.raises(PermanentJobError, match="private network"):
        await fetch_web_page(f"{site.base}/article", settings_for())
    closed = f"127.0.0.1:{site.closed_port}"
    with pytest.raises(TransientJobError, match="could not be reached"):
        await fetch_web_page(f"http://{closed}/", settings_for(closed))


async def test_probe_content_type_falls_back_to_get(site: Site) -> None:
    settings = settings_for(site.allow)  # the fake site answers HEAD with 501
    assert await probe_content_type(f"{site.base}/article", settings) == "text/html"
    assert await probe_content_type(f"{site.base}/binary", settings) == ("application/octet-stream")
    with pytest.raises(PermanentJobError, match="private network"):
        await probe_content_type(f"{site.base}/redirect-metadata", settings)
