"""Links and media through the API and a real worker: web pages, direct media links and
uploaded audio/video, transcribed by the real AssemblyAI SDK talking to a local fake."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Account, assert_error, wait_job
from tests.fakes.assemblyai import FakeAssemblyAI
from tests.fakes.media import MediaServer

pytestmark = pytest.mark.usefixtures("worker")


async def add_link(client: httpx.AsyncClient, account: Account, url: str) -> dict:
    response = await client.post("/api/materials/url", headers=account.headers, json={"url": url})
    assert response.status_code == 202, response.text
    return response.json()


async def test_web_page_link(
    client: httpx.AsyncClient, alice: Account, media_server: MediaServer
) -> None:
    created = await add_link(client, alice, media_server.url("lecture.html"))
    assert created["material"]["kind"] == "web"
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "succeeded", job
    material = (
        await client.get(f"/api/materials/{created['material']['id']}", headers=alice.headers)
    ).json()
    assert material["acquisition"] == "web_page"
    assert material["title"] == "Plant lecture"


async def test_direct_media_link_is_transcribed_with_timestamps(
    client: httpx.AsyncClient,
    alice: Account,
    media_server: MediaServer,
    fake_assemblyai: FakeAssemblyAI,
) -> None:
    created = await add_link(client, alice, media_server.url("tone.mp3"))
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "succeeded", job
    material_id = created["material"]["id"]
    material = (await client.get(f"/api/materials/{material_id}", headers=alice.headers)).json()
    assert material["acquisition"] == "download"
    assert material["duration_s"] and material["duration_s"] > 0
    hits = (
        await client.get(
            "/api/search", params={"q": "chlorophyll absorbs light"}, headers=alice.headers
        )
    ).json()
    top = hits["hits"][0]
    assert top["material_id"] == material_id
    assert top["location"]["start_s"] is not None


async def test_uploaded_video_is_transcribed_once(
    client: httpx.AsyncClient,
    alice: Account,
    media_server: MediaServer,
    fake_assemblyai: FakeAssemblyAI,
) -> None:
    video = (media_server.root / "lecture.mp4").read_bytes()
    before = len(fake_assemblyai.uploads)
    for _ in range(2):
        response = await client.post(
            "/api/materials", headers=alice.headers, files=[("files", ("lecture.mov", video))]
        )
        assert response.status_code == 202, response.text
        [created] = response.json()["items"]
        assert created["material"]["kind"] == "video"
        job = await wait_job(client, alice, created["job"]["id"])
        assert job["status"] == "succeeded", job
    assert len(fake_assemblyai.uploads) - before <= 1  # the second one came from the cache


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://localhost/admin",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://2130706433/",
        "ftp://example.com/file.mp3",
        "file:///etc/passwd",
        "not a url",
    ],
)
async def test_internal_urls_are_refused_at_the_door(
    client: httpx.AsyncClient, alice: Account, url: str
) -> None:
    response = await client.post("/api/materials/url", headers=alice.headers, json={"url": url})
    assert_error(response, 422)


async def test_redirect_to_an_internal_address_fails_the_job(
    client: httpx.AsyncClient, alice: Account, media_server: MediaServer
) -> None:
    url = f"http://{media_server.host_port}/redirect?to=http://169.254.169.254/latest/meta-data/"
    created = await add_link(client, alice, url)
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "failed"
    assert "private" in job["error"].lower() or "internal" in job["error"].lower(), job["error"]
