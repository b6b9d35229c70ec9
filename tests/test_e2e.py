"""End to end: the system started exactly as `make run` starts it, driven over HTTP.

No Redis is reachable at the configured URL, so the supervisor starts an embedded Valkey,
as it does on a fresh machine; it also starts its own Chroma server, the API (uvicorn) and
a worker (arq), each a separate process.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import running_system


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    data_dir = tmp_path_factory.mktemp("e2e")
    with running_system(data_dir) as (base, process):
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/api/health/ready").json()["checks"]["workers"]["live"] < 1:
            assert time.monotonic() < deadline, (data_dir / "system.log").read_text()
            time.sleep(0.2)
        yield base, process


def register_and_login(client: httpx.Client, email: str) -> dict[str, str]:
    password = "a long enough password"
    assert (
        client.post("/api/auth/register", json={"email": email, "password": password}).status_code
        == 201
    )
    tokens = client.post("/api/auth/login", data={"username": email, "password": password}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_learner_journey_over_http(system: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, _ = system
    with httpx.Client(base_url=base, timeout=30) as client:
        alice = register_and_login(client, "alice@example.com")
        created = client.post(
            "/api/materials/text",
            headers=alice,
            json={
                "title": "The French Revolution",
                "text": "# Causes\n\nThe Estates-General met at Versailles in May 1789.\n\n"
                "# Events\n\nThe storming of the Bastille happened on 14 July 1789.",
            },
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job"]["id"]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/api/jobs/{job_id}", headers=alice).json())["status"] in {
            "queued",
            "running",
        }:
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "succeeded", job

        hits = client.get("/api/search", params={"q": "Bastille storming"}, headers=alice).json()[
            "hits"
        ]
        assert hits[0]["material_id"] == created.json()["material"]["id"]
        assert "Bastille" in hits[0]["text"]

        bob = register_and_login(client, "bob@example.com")
        assert client.get(f"/api/jobs/{job_id}", headers=bob).status_code == 404
        material_id = created.json()["material"]["id"]
        assert client.get(f"/api/materials/{material_id}", headers=bob).status_code == 404
        assert client.get("/api/search", params={"q": "Bastille"}, headers=bob).json()["hits"] == []


def test_sigterm_stops_every_process(system: tuple[str, subprocess.Popen[bytes]]) -> None:
    _, process = system
    children = psutil.Process(process.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    assert "uvicorn" in names and "-m worker" in names and "chroma" in names and "valkey" in names
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    assert not Path("/proc", str(process.pid)).exists() or process.returncode is not None
