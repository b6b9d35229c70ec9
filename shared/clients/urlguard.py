"""The one guard every URL fetch goes through (server-side request forgery protection).

A learner's link is fetched by our servers, so a link must never make us talk to
ourselves or to our private network: loopback, RFC 1918, link-local (the cloud
metadata service at 169.254.169.254), shared/CGNAT, multicast, unspecified and reserved
addresses are refused, in every spelling (decimal ``2130706433``, octal ``0177.0.0.1``,
hex ``0x7f.1``, short ``127.1``, IPv6, IPv4-mapped/6to4/Teredo IPv6), and only http(s)
without credentials is accepted.

Three layers, one rule (`is_forbidden_address`):

* `check_url` — pure, no network. Syntax, scheme, credentials, port, literal IPs and
  ``localhost`` names. The API calls it at the door so plainly bad links answer 422.
* `resolve_and_check` / `resolve_host` — resolve the name and refuse when ANY address is
  forbidden. The check is on the resolved addresses, never on the spelling.
* The enforcement points, which check at connect time:
  - `guarded_client` (httpx): its transport runs `check_url` on every request, including
    every redirect hop, and its network backend resolves, checks and then connects to
    the *checked* IP (TLS still verifies the original host name), so a DNS answer that
    changes between check and connect (DNS rebinding) cannot slip through.
  - `guarded_resolution` (code doing its own networking in a worker thread, such as
    yt-dlp or the AssemblyAI SDK): while active in a thread, every ``socket.getaddrinfo``
    that thread makes is checked, and those are exactly the addresses it then connects
    to. Redirects followed internally by such libraries are covered, because every new
    connection resolves first.

What is NOT covered: subprocesses (ffmpeg launched by yt-dlp resolves on its own), C
libraries with their own resolver (curl_cffi, if ever installed), and event loops run
inside a guarded thread (their resolution happens in an executor thread). Proxies from
the environment are ignored by `guarded_client` (a proxy would resolve for us).

``allowlist`` holds ``"host:port"`` strings let through even when they resolve to a
forbidden address. Tests use it to reach local fake servers; production leaves it empty
(`Settings.fetch_allowlist`). An entry matches either the host name as written in the URL
or a resolved IP (``"127.0.0.1:8080"``, ``"[::1]:8080"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpcore
import httpx

from shared.errors import InvalidInput

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_REDIRECTS: Final = 5
MAX_URL_LENGTH: Final = 4096
MAX_ADDRESSES_TRIED: Final = 4
USER_AGENT: Final = "Mozilla/5.0 (compatible; BrainwaveFetcher/0.1; study material import)"

PRIVATE_MESSAGE: Final = "This address points inside a private network and cannot be fetched."
NOT_PUBLIC_MESSAGE: Final = "This address is not a public web address and cannot be fetched."
SCHEME_MESSAGE: Final = "Only http:// and https:// links can be fetched."
CREDENTIALS_MESSAGE: Final = (
    "Links with a user name or password in them are not accepted; share a public link."
)
INVALID_MESSAGE: Final = "This link is not a valid web address."

_SHARED_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAMES: Final = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
)
# Whitespace, control characters and backslashes: parsers disagree on them, and
# disagreement between the checker's parser and the fetcher's is how guards are bypassed.
_UNSAFE_CHARS: Final = re.compile(r"[\x00-\x20\x7f\\]")
# Everything inet_aton (and so getaddrinfo) reads as an IPv4 address: 1 to 4 parts,
# each decimal, octal (leading 0) or hex (0x).
_HOST_NAME: Final = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")
_NUMERIC_HOST: Final = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")


class UrlRefused(InvalidInput):
    """A URL the guard will not fetch; the message is written for the learner."""


class ResolutionRefused(UrlRefused, OSError):
    """Raised from inside `socket.getaddrinfo` under `guarded_resolution`.

    It is an `OSError` too, so networking libraries treat it as a failed connection
    (and do not crash on an unexpected exception type), while code catching `UrlRefused`
    still recognises it.
    """


class HostNotFound(InvalidInput):
    """The host name does not exist in DNS (a typo, a dead site)."""


@dataclass(frozen=True, slots=True)
class ParsedTarget:
    url: str
    scheme: str
    host: str  # lower-case ASCII (IDNA), no brackets, no trailing dot
    port: int
    ip: IPAddress | None  # set when the host is an IP literal, in whatever spelling
    allowlisted: bool

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# --------------------------------------------------------------------------- the rule


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if ip in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for every address a learner's link must never make us connect to."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on the wire
            return is_forbidden_address(ip.ipv4_mapped)
        if ip.sixtofour is not None or ip.teredo is not None:
            # Deprecated tunnels (RFC 7526, Teredo) that no study material needs; refused
            # outright, since Python releases disagree on whether 2002::/16 is global.
            return True
        if any(is_forbidden_address(v4) for v4 in _embedded_ipv4(ip)):
            return True
        if ip.is_site_local:
            return True
    elif ip in _SHARED_CGNAT:
        return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def _refusal_message(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_reserved:
        return NOT_PUBLIC_MESSAGE
    return PRIVATE_MESSAGE


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, in any spelling getaddrinfo accepts.

    Returns None for host names. Raises UrlRefused for numeric hosts that are not a valid
    address (``999999999999``), which resolvers disagree about.
    """
    candidate = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    candidate = candidate.removesuffix(".")
    if _NUMERIC_HOST.match(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            raise UrlRefused(INVALID_MESSAGE) from None
    return None


# ------------------------------------------------------------------------- allowlist


def _normalise_host(host: str) -> str:
    host = host.strip().strip("[]").lower().removesuffix(".")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    return host


def _normalise_allowlist(allowlist: Collection[str]) -> frozenset[tuple[str, int]]:
    entries: set[tuple[str, int]] = set()
    for entry in allowlist:
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"fetch allowlist entries are 'host:port', got {entry!r}")
        entries.add((_normalise_host(host), int(port)))
    return frozenset(entries)


def _allowed(entries: frozenset[tuple[str, int]], host: str | IPAddress, port: int) -> bool:
    return bool(entries) and (_normalise_host(str(host)), port) in entries


# ---------------------------------------------------------------------------- check


def check_url(url: str, allowlist: Collection[str] = ()) -> ParsedTarget:
    """Refuse a URL that is plainly unfetchable, without touching the network.

    Checks syntax, scheme (http/https), credentials, port, IP literals in any spelling,
    and ``localhost`` names. A host name that is not a literal still needs
    `resolve_and_check` (done for you by `guarded_client` and `guarded_resolution`).
    """
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("Please give a web address.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or _UNSAFE_CHARS.search(url):
        raise UrlRefused(INVALID_MESSAGE)
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise UrlRefused(INVALID_MESSAGE) from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UrlRefused(SCHEME_MESSAGE)
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UrlRefused(CREDENTIALS_MESSAGE)
    hostname = parts.hostname
    if not hostname:
        raise UrlRefused("This link has no site name in it.")
    if explicit_port is not None and not 0 < explicit_port < 65536:
        raise UrlRefused(INVALID_MESSAGE)
    port = explicit_port or DEFAULT_PORTS[scheme]
    entries = _normalise_allowlist(allowlist)

    ip = parse_ip_literal(hostname)
    if ip is not None:
        allowlisted = _allowed(entries, ip, port)
        if not allowlisted and is_forbidden_address(ip):
            log.warning("url guard refused %s (%s)", url, ip)
            raise UrlRefused(_refusal_message(ip))
        return ParsedTarget(url, scheme, str(ip), port, ip, allowlisted)

    # The fetcher (httpx) must read the same host as we did, and it must be encodable.
    # Both sides go through httpx's IDNA encoding so "bücher.de" and its punycode agree.
    try:
        fetcher_host = httpx.URL(url).raw_host
        our_host = httpx.URL(f"http://{hostname}/").raw_host
        host = fetcher_host.decode("ascii").lower().removesuffix(".")
    except (httpx.InvalidURL, UnicodeError):
        raise UrlRefused(INVALID_MESSAGE) from None
    if fetcher_host.lower() != our_host.lower() or not _HOST_NAME.match(host):
        raise UrlRefused(INVALID_MESSAGE)
    allowlisted = _allowed(entries, host, port)
    if not allowlisted and (host in _LOCAL_NAMES or host.endswith(".localhost")):
        log.warning("url guard refused %s (local name)", url)
        raise UrlRefused(PRIVATE_MESSAGE)
    return ParsedTarget(url, scheme, host, port, None, allowlisted)


# --------------------------------------------------------------------------- resolve


def _dedupe(addresses: Sequence[str]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for address in addresses:
        seen.setdefault(ipaddress.ip_address(address), None)
    return list(seen)


def _check_addresses(
    host: str, port: int, ips: Sequence[IPAddress], entries: frozenset[tuple[str, int]]
) -> None:
    if _allowed(entries, host, port):
        return
    for ip in ips:
        if is_forbidden_address(ip) and not _allowed(entries, ip, port):
            log.warning("url guard refused %s:%s resolving to %s", host, port, ip)
            raise UrlRefused(_refusal_message(ip))


async def _system_getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]


_NOT_FOUND_CODES: Final = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


async def resolve_host(host: str, port: int, allowlist: Collection[str] = ()) -> list[IPAddress]:
    """Resolve and return the addresses to connect to; UrlRefused if ANY is forbidden.

    Raises HostNotFound when the name does not exist, and OSError for other resolver
    failures (worth retrying).
    """
    entries = _normalise_allowlist(allowlist)
    literal = parse_ip_literal(host)
    if literal is not None:
        ips: list[IPAddress] = [literal]
    else:
        try:
            ips = _dedupe(await _system_getaddrinfo(host, port))
        except socket.gaierror as exc:
            if exc.errno in _NOT_FOUND_CODES:
                raise HostNotFound(
                    f"The site {host} could not be found. Check the link for typos."
                ) from exc
            raise
        if not ips:
            raise HostNotFound(f"The site {host} has no address to connect to.")
    _check_addresses(host, port, ips, entries)
    return ips


async def resolve_and_check(url: str, allowlist: Collection[str] = ()) -> list[IPAddress]:
    """`check_url`, then resolve the host and refuse when ANY address is forbidden."""
    target = check_url(url, allowlist)
    return await resolve_host(target.host, target.port, allowlist)


# ------------------------------------------------------------------------------ httpx


class _GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks every host, then connects to the checked address itself."""

    def __init__(self, allowlist: Collection[str]) -> None:
        self._allowlist = tuple(allowlist)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                ips = await resolve_host(host, port, self._allowlist)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for ip in ips[:MAX_ADDRESSES_TRIED]:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UrlRefused(NOT_PUBLIC_MESSAGE)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that checks every request (so every redirect hop) and whose
    connections go only to resolved-and-checked addresses. Never uses a proxy."""

    def __init__(self, allowlist: Collection[str] = ()) -> None:
        super().__init__(trust_env=False)
        self._allowlist = tuple(allowlist)
        _normalise_allowlist(self._allowlist)  # a malformed entry fails here, loudly
        # httpx offers no network_backend option, so the pool is built here with ours;
        # `_pool` is the one attribute AsyncHTTPTransport sends through.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=_GuardedNetworkBackend(self._allowlist),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), self._allowlist)
        return await super().handle_async_request(request)


def guarded_client(
    settings: Settings,
    *,
    allowlist: Collection[str] | None = None,
    timeout: float | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for learner-supplied URLs: guarded on every hop, at most
    `MAX_REDIRECTS` redirects, `settings.fetch_timeout_seconds` per network operation.

    Besides httpx errors, requests may raise UrlRefused or HostNotFound (both InvalidInput).
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(settings.fetch_allowlist if allowlist is None else allowlist),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=httpx.Timeout(timeout or settings.fetch_timeout_seconds),
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


# ---------------------------------------------------------------- socket.getaddrinfo


@dataclass(slots=True, eq=False)
class ResolutionGuard:
    """What one `guarded_resolution` block allows, and what it refused."""

    allowlist: frozenset[tuple[str, int]]
    refused: list[str] = field(default_factory=list)  # "host:port -> ip", for logs
    message: str | None = None  # the learner-facing reason of the last refusal


_thread_state = threading.local()
_install_lock = threading.Lock()
_GUARD_MARK: Final = "_brainwave_url_guard"

GetAddrInfo = Callable[..., list[Any]]


def _active_guard() -> ResolutionGuard | None:
    stack: list[ResolutionGuard] | None = getattr(_thread_state, "stack", None)
    return stack[-1] if stack else None


def _check_resolution(guard: ResolutionGuard, host: Any, results: list[Any]) -> None:
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host or "")
    for family, _type, _proto, _canon, sockaddr in results:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        port = int(sockaddr[1])
        if _allowed(guard.allowlist, name, port) or _allowed(guard.allowlist, ip, port):
            continue
        if is_forbidden_address(ip):
            message = _refusal_message(ip)
            guard.refused.append(f"{name}:{port} -> {ip}")
            guard.message = message
            log.warning("url guard refused resolution of %s:%s to %s", name, port, ip)
            raise ResolutionRefused(message)


def _install_getaddrinfo_guard() -> None:
    """Wrap socket.getaddrinfo once per process; unguarded threads see no change."""
    with _install_lock:
        if getattr(socket.getaddrinfo, _GUARD_MARK, False):
            return
        original: GetAddrInfo = socket.getaddrinfo

        def guarded_getaddrinfo(
            host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
        ) -> list[Any]:
            results = original(host, port, family, type, proto, flags)
            guard = _active_guard()
            if guard is not None:
                _check_resolution(guard, host, results)
            return results

        setattr(guarded_getaddrinfo, _GUARD_MARK, True)
        socket.getaddrinfo = guarded_getaddrinfo


@contextlib.contextmanager
def guarded_resolution(allowlist: Collection[str] = ()) -> Iterator[ResolutionGuard]:
    """Guard every name resolution the CURRENT thread makes inside the block.

    Enter it inside the worker thread that does the networking (e.g. in the function
    given to `asyncio.to_thread`), around yt-dlp or an SDK call. A forbidden resolution
    raises `ResolutionRefused` (an OSError and a UrlRefused) from `socket.getaddrinfo`;
    libraries usually wrap it in their own error, so when the block exits with any
    exception after a refusal, that exception is replaced by `UrlRefused`.
    """
    _install_getaddrinfo_guard()
    guard = ResolutionGuard(_normalise_allowlist(allowlist))
    stack: list[ResolutionGuard] | None = getattr(_thread_state, "stack", None)
    if stack is None:
        stack = _thread_state.stack = []
    stack.append(guard)
    try:
        yield guard
    except UrlRefused:
        raise
    except Exception as exc:
        if guard.message is not None:
            raise UrlRefused(guard.message) from exc
        raise
    finally:
        stack.remove(guard)
