"""Uploads over HTTP: typed by content, stored under generated names, size-limited while
streaming, each file its own material and job, processed by a real worker."""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import docx
import httpx
import psutil
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from shared.config import Settings
from shared.resources import Resources
from tests import hostile_files
from tests.conftest import (
    BIN,
    ROOT,
    Account,
    Stack,
    assert_error,
    free_port,
    process_env,
    sign_up,
    stop_process,
    wait_http,
    wait_job,
)

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


def _encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Secret notes on enzymes."]))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


async def test_hostile_documents_fail_their_jobs_with_a_clear_error(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """Each is accepted (it is a PDF or a DOCX), then its job fails with a message for the
    learner: the bombs are refused before anything expands."""
    bomb = hostile_files.docx_zip_bomb()  # 3 GB of XML in 3 MB
    assert len(bomb) < 4 * hostile_files.MB
    hostile = {
        "locked.pdf": (_encrypted_pdf(), "password-protected"),
        "pages.pdf": (hostile_files.pdf_page_tree_bomb(), "unreasonable size"),
        "stream.pdf": (hostile_files.pdf_stream_bomb(), "unreasonable size"),
        "essay.docx": (bomb, "suspicious archive"),
    }
    response = await upload(client, alice, *((name, data) for name, (data, _) in hostile.items()))
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [i["material"]["kind"] for i in items] == ["pdf", "pdf", "pdf", "docx"]
    for item, (_, expected) in zip(items, hostile.values(), strict=True):
        job = await wait_job(client, alice, item["job"]["id"])
        assert job["status"] == "failed", job
        assert expected in job["error"] and "Traceback" not in job["error"], job
        assert job["attempts"] == 1, job  # permanent: not retried


async def test_empty_and_wrong_magic_files_are_415(
    client: httpx.AsyncClient, alice: Account
) -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    zip_not_office = b"PK\x05\x06" + b"\x00" * 18  # an empty zip, named .docx
    response = await upload(
        client,
        alice,
        ("empty.pdf", b""),
        ("thesis.pdf", elf),
        ("slides.pptx", png),
        ("report.docx", zip_not_office),
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert [r["filename"] for r in error["details"]] == [
        "empty.pdf",
        "thesis.pdf",
        "slides.pptx",
        "report.docx",
    ]
    assert all(r["message"] for r in error["details"])


async def test_hostile_file_names_are_only_titles(
    client: httpx.AsyncClient, alice: Account, resources: Resources
) -> None:
    root = Path(resources.settings.data_dir).resolve()
    names = {
        "..\\..\\Windows\\win.ini.md": "win.ini",
        "/etc/shadow.md": "shadow",
        "C:\\boot.md": "boot",
        "%2e%2e%2f%2e%2e%2fsecret.md": "%2e%2e%2f%2e%2e%2fsecret",
        "x" * 400 + ".md": "x" * 300,
    }
    for name, title in names.items():
        response = await upload(client, alice, (name, b"# Safe\n\nNothing escapes."))
        assert response.status_code == 202, response.text
        [created] = response.json()["items"]
        assert created["material"]["title"] == title
        [stored] = (root / "uploads" / "documents").glob(f"{created['material']['id']}*")
        assert stored.resolve().parent == root / "uploads" / "documents"


def _stream_upload(port: int, token: str, total: int, sample: Any) -> tuple[int, bytes, int]:
    """POST a multipart body of `total` zero bytes, chunked (no Content-Length), until the
    server answers. Returns (bytes sent, raw response, status)."""
    head = (
        "POST /api/materials HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
    zeros = b"\x00" * (1024 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(zeros), zeros)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the server has answered: stop sending
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(zeros)
            if sent % (32 * 1024 * 1024) == 0:
                sample()
        response = http.client.HTTPResponse(sock)
        response.begin()
        return sent, response.read(), response.status


@pytest.mark.e2e
def test_2gb_stream_is_refused_while_streaming_with_flat_memory(
    migrated: Settings, tmp_path: Path
) -> None:
    """A real uvicorn process, started as compose starts it: a 2 GB upload without a
    Content-Length is refused with 413 once it passes the limit (200 MB), and the API's
    memory stays flat while it streams."""
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=process_env(migrated),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/health", process=process)
        with httpx.Client(base_url=base, timeout=30) as http_client:
            email = f"big-{uuid.uuid4().hex[:12]}@example.com"
            password = "correct horse battery staple"
            body = {"email": email, "password": password}
            assert http_client.post("/api/auth/register", json=body).status_code == 201
            login = {"username": email, "password": password}
            token = http_client.post("/api/auth/login", data=login).json()["access_token"]
            small = {"files": ("warm.md", b"# Warm up\n\nThe parser is loaded.")}
            warm = http_client.post(
                "/api/materials", files=small, headers={"Authorization": f"Bearer {token}"}
            )
            assert warm.status_code == 202, warm.text
        api = psutil.Process(process.pid)
        before = api.memory_info().rss
        peak = before

        def sample() -> None:
            nonlocal peak
            peak = max(peak, api.memory_info().rss)

        total = 2 * 1024 * 1024 * 1024
        sent, raw, status = _stream_upload(port, token, total, sample)
        sample()
        assert status == 413, raw
        error = json.loads(raw)["error"]
        assert error["code"] == "payload_too_large" and error["message"], error
        assert sent < total // 4, sent  # refused while streaming, long before the end
        assert peak - before <= 50 * 1024 * 1024, (before, peak)
        incoming = Path(migrated.data_dir) / "uploads" / "incoming"
        assert not incoming.exists() or list(incoming.iterdir()) == []
    finally:
        stop_process(process)
