"""A real browser against the running system: headless Chromium loads a page from another
origin that logs in and reads the chat stream with fetch + a Bearer token, proving that
CORS and streaming work for a browser frontend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import running_system
from tests.fakes import ThreadedServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)

PAGE = """<!DOCTYPE html><html><body><script>
const API = "__API__";
async function run() {
  const out = {};
  try {
    const email = "browser-" + Date.now() + "@example.com";
    const password = "a browser password";
    let r = await fetch(API + "/api/auth/register", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({email, password})});
    out.register = r.status;
    r = await fetch(API + "/api/auth/login", {method: "POST",
      body: new URLSearchParams({username: email, password})});
    const token = (await r.json()).access_token;
    const H = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
    r = await fetch(API + "/api/materials/text", {method: "POST", headers: H,
      body: JSON.stringify({title: "Heart", text: "The heart pumps blood through the arteries."})});
    const job = (await r.json()).job.id;
    for (let i = 0; i < 200; i++) {
      const j = await (await fetch(API + "/api/jobs/" + job, {headers: H})).json();
      out.job = j.status;
      if (j.status !== "queued" && j.status !== "running") break;
      await new Promise(res => setTimeout(res, 100));
    }
    const sid = (await (await fetch(API + "/api/chat/sessions",
      {method: "POST", headers: H, body: "{}"})).json()).id;
    r = await fetch(API + "/api/chat/sessions/" + sid + "/messages", {method: "POST",
      headers: {...H, "Accept": "text/event-stream"},
      body: JSON.stringify({content: "What does the heart pump?"})});
    out.chat_status = r.status;
    out.content_type = r.headers.get("content-type");
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    out.reads = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      out.reads += 1;
      text += decoder.decode(value, {stream: true});
    }
    const lines = text.split("\\n");
    out.events = lines.filter(l => l.startsWith("event: ")).map(l => l.slice(7));
    out.answer = lines.filter(l => l.startsWith("data: ")).map(l => {
      try { return JSON.parse(l.slice(6)).text || ""; } catch (e) { return ""; }
    }).join("");
  } catch (e) {
    out.error = String(e);
  }
  await fetch("/report", {method: "POST", body: JSON.stringify(out)});
}
run();
</script></body></html>"""


class Page:
    def __init__(self) -> None:
        self.api = ""
        self.report: dict[str, object] | None = None
        self.received = threading.Event()

        async def index(_: Request) -> Response:
            return HTMLResponse(PAGE.replace("__API__", self.api))

        async def report(request: Request) -> Response:
            self.report = json.loads(await request.body())
            self.received.set()
            return Response(status_code=204)

        app = Starlette(routes=[Route("/", index), Route("/report", report, methods=["POST"])])
        self.server = ThreadedServer(app)


@pytest.fixture(scope="module")
def page_and_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Page, str]]:
    page = Page()
    origins = json.dumps([page.server.base_url])
    with running_system(tmp_path_factory.mktemp("browser"), CORS_ORIGINS=origins) as (api, _):
        page.api = api
        with page.server:
            yield page, api


def test_browser_frontend_streams_chat_across_origins(
    page_and_api: tuple[Page, str], tmp_path: Path
) -> None:
    page, api = page_and_api
    assert CHROMIUM is not None, "install Debian's chromium (.ci/run does)"
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--remote-debugging-port=0",
            page.server.base_url + "/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert page.received.wait(timeout=90), "the page never reported back"
    finally:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()
    report = page.report
    assert report is not None
    assert "error" not in report, report
    assert report["register"] == 201
    assert report["job"] == "succeeded"
    assert report["chat_status"] == 200
    assert str(report["content_type"]).startswith("text/event-stream")
    events = report["events"]
    assert isinstance(events, list)
    assert events[0] == "token"
    assert events[-2:] == ["citations", "done"]
    assert "blood" in str(report["answer"])
    # Without CORS for its origin, the browser could not have read any of this.
    preflight = httpx.options(
        f"{api}/api/auth/me",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
