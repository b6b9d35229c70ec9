"""Liveness and readiness."""

from __future__ import annotations

import httpx

from api.main import create_app
from shared.config import Settings
from tests.conftest import WorkerProcess, free_port


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.json() == {"status": "ok"}


async def test_ready_reports_every_dependency(
    client: httpx.AsyncClient, worker: WorkerProcess
) -> None:
    response = await client.get("/api/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["chroma"]["ok"]
    assert checks["workers"] == {"ok": True, "live": 1}
    assert isinstance(body["queue"]["depth"], int)


async def test_ready_is_503_when_chroma_is_down(migrated: Settings) -> None:
    broken = migrated.model_copy(update={"chroma_url": f"http://127.0.0.1:{free_port()}"})
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/health/ready")
            assert (await client.get("/api/health")).status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["chroma"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


async def test_openapi_documents_the_contract(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/auth/api-keys",
        "/api/auth/api-keys/{key_id}",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/events",
        "/api/materials/text",
        "/api/materials",
        "/api/materials/{material_id}",
        "/api/materials/{material_id}/chunks",
        "/api/search",
        "/api/health",
        "/api/health/ready",
    ):
        assert path in paths, path
    assert "404" in paths["/api/jobs/{job_id}"]["get"]["responses"]
