"""Uploads over HTTP: typed by content, stored under generated names, size-limited while
streaming, each file its own material and job, processed by a real worker."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import docx
import httpx
import pytest
from fpdf import FPDF

from shared.resources import Resources
from tests.conftest import Account, Stack, assert_error, sign_up, wait_job

pytestmark = pytest.mark.usefixtures("worker")


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Thermodynamics", level=1)
    document.add_paragraph("Entropy of an isolated system never decreases over time.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def upload(
    client: httpx.AsyncClient, account: Account, *files: tuple[str, bytes]
) -> httpx.Response:
    return await client.post(
        "/api/materials",
        headers=account.headers,
        files=[("files", (name, content, "application/octet-stream")) for name, content in files],
    )


async def test_pdf_keeps_page_numbers(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    pdf = make_pdf(
        [
            "Chapter one introduces the Krebs cycle.",
            "Chapter two covers glycolysis in the cytoplasm.",
        ]
    )
    response = await upload(client, alice, ("biology.pdf", pdf))
    assert response.status_code == 202, response.text
    [created] = response.json()["items"]
    assert created["material"]["kind"] == "pdf"
    assert created["material"]["title"] == "biology"
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "succeeded", job
    material = (
        await client.get(f"/api/materials/{created['material']['id']}", headers=alice.headers)
    ).json()
    assert material["page_count"] == 2
    assert material["status"] == "ready"
    hits = (
        await client.get("/api/search", params={"q": "glycolysis cytoplasm"}, headers=alice.headers)
    ).json()
    assert hits["hits"][0]["location"]["page"] == 2
    stored = list(
        (Path(resources.settings.data_dir) / "uploads" / "documents").glob(
            f"{created['material']['id']}*"
        )
    )
    assert [p.suffix for p in stored] == [".pdf"]


async def test_several_files_one_bad_does_not_stop_the_others(
    client: httpx.AsyncClient, alice: Account
) -> None:
    response = await upload(
        client,
        alice,
        ("notes.md", b"# Optics\n\nLight bends when it enters glass: refraction."),
        ("virus.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
        ("physics.docx", make_docx()),
        ("report.pdf", b"just text pretending to be a pdf, about entropy and heat"),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    kinds = [item["material"]["kind"] for item in body["items"]]
    assert kinds == ["markdown", "docx", "text"]  # the fake .pdf is typed by its content
    assert [r["filename"] for r in body["rejected"]] == ["virus.exe"]
    for item in body["items"]:
        job = await wait_job(client, alice, item["job"]["id"])
        assert job["status"] == "succeeded", job
    hits = (
        await client.get(
            "/api/search", params={"q": "entropy isolated system"}, headers=alice.headers
        )
    ).json()
    assert hits["hits"][0]["material_id"] == body["items"][1]["material"]["id"]


async def test_only_bad_files_is_415(client: httpx.AsyncClient, alice: Account) -> None:
    response = await upload(client, alice, ("a.bin", bytes(range(256)) * 4))
    error = assert_error(response, 415, "unsupported_media_type")
    assert error["details"][0]["filename"] == "a.bin"
    empty = await upload(client, alice, ("empty.txt", b""))
    assert_error(empty, 415)


async def test_corrupt_pdf_fails_its_job_with_a_clear_error(
    client: httpx.AsyncClient, alice: Account
) -> None:
    truncated = make_pdf(["Some text on a page."])[:400]
    response = await upload(client, alice, ("broken.pdf", truncated))
    assert response.status_code == 202, response.text
    [created] = response.json()["items"]
    job = await wait_job(client, alice, created["job"]["id"])
    assert job["status"] == "failed"
    assert "PDF" in job["error"] and "Traceback" not in job["error"]
    material = (
        await client.get(f"/api/materials/{created['material']['id']}", headers=alice.headers)
    ).json()
    assert material["status"] == "failed"
    assert material["error"] == job["error"]


async def test_path_traversal_names_are_only_titles(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    response = await upload(
        client, alice, ("../../../etc/passwd.md", b"# Safe\n\nNothing escapes.")
    )
    [created] = response.json()["items"]
    assert created["material"]["title"] == "passwd"
    assert created["material"]["original_filename"] == "../../../etc/passwd.md"
    root = Path(resources.settings.data_dir).resolve()
    documents = list((root / "uploads" / "documents").glob(f"{created['material']['id']}*"))
    assert len(documents) == 1 and documents[0].resolve().is_relative_to(root)


async def test_upload_validation(client: httpx.AsyncClient, alice: Account) -> None:
    assert_error(await client.post("/api/materials", headers=alice.headers), 422)
    assert_error(
        await client.post(
            "/api/materials", headers=alice.headers, files=[("wrong", ("a.md", b"x"))]
        ),
        422,
    )
    assert_error(await client.post("/api/materials", files=[("files", ("a.md", b"# x"))]), 401)


async def test_oversize_upload_is_413_while_streaming(make_stack: Any) -> None:
    stack: Stack
    async with make_stack(max_upload_bytes=1024 * 1024) as stack:
        account = await sign_up(stack.client)

        async def body():
            boundary = b"--xyz"
            yield (
                boundary
                + b'\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
            )
            for _ in range(8):  # 8 MB, no Content-Length: refused as it streams
                yield b"a" * (1024 * 1024)
            yield b"\r\n" + boundary + b"--\r\n"

        response = await stack.client.post(
            "/api/materials",
            headers={**account.headers, "content-type": "multipart/form-data; boundary=xyz"},
            content=body(),
        )
        assert_error(response, 413, "payload_too_large")
        declared = await stack.client.post(
            "/api/materials",
            headers=account.headers,
            files=[("files", ("big.txt", b"a" * (3 * 1024 * 1024)))],
        )
        assert_error(declared, 413, "payload_too_large")
        incoming = Path(stack.settings.data_dir) / "uploads" / "incoming"
        assert not incoming.exists() or list(incoming.iterdir()) == []
