"""deploy/nginx.conf fits the API it fronts.

The file is parsed into blocks and every route of the real app (from its OpenAPI) is
matched to the location nginx would pick, with nginx's own precedence (exact, longest
prefix, `^~`, regexes in order). So a new streaming route, upload route or body limit that
nginx does not know about fails here. When an `nginx` binary is installed (.ci/run installs
Debian's), `nginx -t` also loads the file with a throwaway self-signed certificate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api.main import create_app
from api.middleware import BodySizeLimit
from shared.config import Settings

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
CERT_DIR = "/etc/letsencrypt/live/brainwave/"
CREDENTIAL_ROUTES = ("/api/auth/login", "/api/auth/register", "/api/auth/refresh")
SECURITY_HEADERS = {
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "content-security-policy",
    "referrer-policy",
}
_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};"'#]+""")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Block:
    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def all(self, name: str) -> list[list[str]]:
        return [args for directive, args in self.directives if directive == name]

    def one(self, name: str) -> list[str] | None:
        found = self.all(name)
        assert len(found) <= 1, f"{name} set twice in {self.name} {self.args}"
        return found[0] if found else None

    def blocks(self, name: str) -> list[Block]:
        return [child for child in self.children if child.name == name]


def parse(text: str) -> Block:
    root = Block("main", [])
    stack = [root]
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token == "{":
            block = Block(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        elif token == ";":
            stack[-1].directives.append((words[0], words[1:]))
            words = []
        else:
            words.append(token[1:-1] if token[0] in "'\"" else token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def serving_location(server: Block, path: str) -> Block:
    """The location nginx picks for `path` (no nested locations here)."""
    locations = server.blocks("location")
    for location in locations:
        if location.args[0] == "=" and location.args[1] == path:
            return location
    prefixes = [
        loc
        for loc in locations
        if (len(loc.args) == 1 or loc.args[0] == "^~") and path.startswith(loc.args[-1])
    ]
    longest = max(prefixes, key=lambda loc: len(loc.args[-1]), default=None)
    if longest is not None and longest.args[0] == "^~":
        return longest
    for location in locations:
        if location.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if location.args[0] == "~*" else 0
            if re.search(location.args[1], path, flags):
                return location
    assert longest is not None, f"no location serves {path}"
    return longest


def effective(name: str, *levels: Block) -> list[str] | None:
    """A directive's value where the innermost level that sets it wins (levels inner first)."""
    for level in levels:
        value = level.one(name)
        if value is not None:
            return value
    return None


def size_bytes(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match.group(1)) * _UNITS[match.group(2)]


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", value.lower())
    assert match, value
    return int(match.group(1)) * _SECONDS[match.group(2)]


@pytest.fixture(scope="module")
def conf() -> Block:
    return parse(NGINX_CONF.read_text())


@pytest.fixture(scope="module")
def tls_server(conf: Block) -> Block:
    (server,) = [s for s in conf.blocks("server") if any("ssl" in a for a in s.all("listen"))]
    return server


@pytest.fixture(scope="module")
def plain_server(conf: Block, tls_server: Block) -> Block:
    (server,) = [s for s in conf.blocks("server") if s is not tls_server]
    return server


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(_env_file=None))


@pytest.fixture(scope="module")
def app_routes(app: FastAPI) -> dict[str, dict[str, Any]]:
    """OpenAPI paths of the real app, with `{param}` filled in: {path: operations}."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {re.sub(r"\{[^}]+\}", "abc123", path): ops for path, ops in paths.items()}


@pytest.fixture(scope="module")
def api_body_limits(app: FastAPI) -> tuple[int, dict[str, int]]:
    """The API's own request body limits: (default, {path: limit})."""
    for middleware in app.user_middleware:
        if getattr(middleware, "cls", None) is BodySizeLimit:
            kwargs: dict[str, Any] = dict(middleware.kwargs)
            return int(kwargs["max_bytes"]), dict(kwargs["path_limits"])
    raise AssertionError("BodySizeLimit is not installed")


def test_http_redirects_to_https(plain_server: Block) -> None:
    assert ["80", "default_server"] in plain_server.all("listen")
    catch_all = serving_location(plain_server, "/api/materials")
    assert catch_all.one("return") == ["301", "https://$host$request_uri"]


def test_tls_uses_the_letsencrypt_certificate_and_modern_protocols(tls_server: Block) -> None:
    assert tls_server.one("ssl_certificate") == [CERT_DIR + "fullchain.pem"]
    assert tls_server.one("ssl_certificate_key") == [CERT_DIR + "privkey.pem"]
    protocols = tls_server.one("ssl_protocols")
    assert protocols and set(protocols) <= {"TLSv1.2", "TLSv1.3"}


def test_security_headers_reach_every_location(tls_server: Block) -> None:
    headers = {args[0].lower(): args for args in tls_server.all("add_header")}
    assert set(headers) >= SECURITY_HEADERS
    assert all(args[-1] == "always" for args in headers.values())
    assert "max-age=" in headers["strict-transport-security"][1]
    assert "frame-ancestors 'none'" in headers["content-security-policy"][1]
    # add_header and proxy_set_header in a location would silently drop the server's.
    for location in tls_server.blocks("location"):
        assert not location.all("add_header"), location.args
        assert not location.all("proxy_set_header"), location.args


def test_forwarded_headers_and_keepalive_friendly_proxying(tls_server: Block) -> None:
    sent = {args[0].lower(): args[1] for args in tls_server.all("proxy_set_header")}
    assert sent["x-forwarded-for"] == "$remote_addr"  # replaced, not appended: unspoofable
    assert sent["x-forwarded-proto"] == "$scheme"
    assert sent["x-request-id"].startswith("$")
    assert sent["host"] == "$host"
    assert sent["connection"] == ""
    assert tls_server.one("proxy_http_version") == ["1.1"]


def test_every_api_route_is_proxied_with_the_apis_body_limit(
    tls_server: Block,
    app_routes: dict[str, dict[str, Any]],
    api_body_limits: tuple[int, dict[str, int]],
) -> None:
    default, path_limits = api_body_limits
    for path in [*app_routes, "/docs", "/openapi.json"]:
        location = serving_location(tls_server, path)
        assert location.one("proxy_pass"), f"{path} is not proxied"
        limit = effective("client_max_body_size", location, tls_server)
        assert limit and size_bytes(limit[0]) == path_limits.get(path, default), path


def test_upload_limit_matches_the_settings(tls_server: Block) -> None:
    location = serving_location(tls_server, "/api/materials")
    limit = location.one("client_max_body_size")
    assert limit
    expected = Settings(_env_file=None).max_upload_bytes + 1024 * 1024  # multipart overhead
    assert size_bytes(limit[0]) == expected
    assert location.one("proxy_request_buffering") == ["off"]


def test_metrics_are_not_exposed(tls_server: Block) -> None:
    for path in ("/metrics", "/", "/anything"):
        location = serving_location(tls_server, path)
        assert location.one("proxy_pass") is None
        assert location.one("return") == ["404"]


def test_streaming_routes_are_not_buffered(
    tls_server: Block, app_routes: dict[str, dict[str, Any]]
) -> None:
    streaming = [
        path
        for path, operations in app_routes.items()
        for operation in operations.values()
        if any(
            "text/event-stream" in (r.get("content") or {}) for r in operation["responses"].values()
        )
    ]
    assert {"/api/chat/sessions/abc123/messages", "/api/jobs/abc123/events"} <= set(streaming)
    for path in streaming:
        location = serving_location(tls_server, path)
        levels = (location, tls_server)
        assert effective("proxy_buffering", *levels) == ["off"], path
        assert effective("proxy_cache", *levels) == ["off"], path
        assert effective("gzip", *levels) in (None, ["off"]), path
        timeout = effective("proxy_read_timeout", *levels)
        assert timeout and seconds(timeout[0]) >= 300, path


def test_the_account_export_may_take_minutes(tls_server: Block) -> None:
    timeout = effective("proxy_read_timeout", serving_location(tls_server, "/api/me/export"))
    assert timeout and seconds(timeout[0]) >= 300


def test_credentials_and_uploads_are_rate_limited(
    conf: Block, tls_server: Block, app_routes: dict[str, dict[str, Any]]
) -> None:
    zones = {
        arg.split("=", 1)[1].split(":")[0]
        for args in conf.all("limit_req_zone")
        for arg in args
        if arg.startswith("zone=")
    }
    assert conf.one("limit_req_status") == ["429"]
    uploads = [
        path
        for path, operations in app_routes.items()
        if any(
            "multipart/form-data" in op.get("requestBody", {}).get("content", {})
            for op in operations.values()
        )
    ]
    assert "/api/materials" in uploads
    for path in [*CREDENTIAL_ROUTES, *uploads, "/api/materials/url"]:
        assert path in app_routes
        limits = serving_location(tls_server, path).all("limit_req")
        assert limits, f"{path} is not rate limited"
        for args in limits:
            assert args[0].startswith("zone=") and args[0][5:] in zones
            assert any(arg.startswith("burst=") for arg in args)
    assert not serving_location(tls_server, "/api/auth/me").all("limit_req")


def test_the_compose_healthcheck_path_exists(plain_server: Block) -> None:
    location = serving_location(plain_server, "/nginx-health")
    assert location.args == ["=", "/nginx-health"]
    assert location.one("return") == ["200", "ok\\n"]


def _nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


@pytest.mark.skipif(_nginx() is None, reason="nginx is not installed (.ci/run installs it)")
def test_nginx_accepts_the_file(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(certs / "privkey.pem"),
         "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site = tmp_path / "site.conf"
    site.write_text(NGINX_CONF.read_text().replace(CERT_DIR, f"{certs}/"))
    temp = tmp_path / "temp"
    temp.mkdir()
    temp_paths = "".join(
        f"  {kind}_temp_path {temp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n{temp_paths}"
        f"  access_log off;\n  include {site};\n}}\n"
    )
    result = subprocess.run(
        [str(_nginx()), "-t", "-p", str(tmp_path), "-c", str(main), "-e", "stderr"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[emerg]" not in result.stderr
