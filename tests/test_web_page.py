"""The page at ``GET /`` (issue 16 item 12), in a real headless Chromium (the Debian package)
driven over the DevTools protocol, against a real service in demo mode with API keys on."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket

from tests.media_helpers import make_audio
from tests.server_helpers import KEY, ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    """One headless Chromium with one page, spoken to over CDP (a websocket)."""

    def __init__(self, profile: Path):
        profile.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
             "--disable-extensions", "--window-size=900,1500", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:  # events in between are not needed
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        out = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && !!document.getElementById('job-form')", 30)

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"still false after {timeout} s: {expression}")

    def set_files(self, selector: str, path: Path) -> None:
        """As a person picking a file: the file input gets the file and fires its events."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def type_into(self, selector: str, text: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "srv").start()  # API keys on (tests/server_helpers.py)
    yield srv
    srv.stop()


def test_the_page_runs_a_job_with_an_api_key_and_plays_the_result(
    server: ServerProcess, browser: Browser, media_dir: Path, tmp_path: Path
) -> None:
    video = media_dir / "demo1_video.mp4"
    speech = make_audio(media_dir / "demo1_audio.wav", tmp_path / "speech.wav", 1.0)
    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    try:
        browser.open(server.base + "/")
        browser.set_files("#video", video)
        browser.set_files("#audio", speech)
        browser.js("document.getElementById('submit').click()")  # no key yet: the API's refusal is shown
        error = browser.wait_for("!$('error').hidden && $('error').textContent", 30)  # $: the page's getElementById
        assert "MISSING_API_KEY" in error and "401" in error

        browser.type_into("#api-key", KEY)
        browser.js("document.getElementById('submit').click()")
        shown: list[str] = []  # every status line the page displayed
        deadline = time.time() + 240
        while time.time() < deadline:
            state = browser.js(
                "({status: document.getElementById('status').textContent,"
                " error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,"
                " duration: document.getElementById('player').duration})"
            )
            if not shown or shown[-1] != state["status"]:
                shown.append(state["status"])
            assert not state["error"], (state, shown)
            if state["duration"] and state["duration"] > 0:  # the result is loaded in the player
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"no playable result; the page showed {shown}")

        assert any(s.startswith("Running:") and "%" in s for s in shown), shown  # stage and progress
        assert shown[-1] == "Done", shown
        job_id = browser.js("document.getElementById('job-id').textContent")
        job = server.client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded"
        # It plays: the time moves.
        assert browser.js("(async () => { const p = document.getElementById('player'); p.muted = true;"
                          " await p.play(); return true; })()")  # fmt: skip
        browser.wait_for("document.getElementById('player').currentTime > 0", 30)
        # The download link gives the result's bytes under the result's name.
        served = server.client.get(f"/jobs/{job_id}/result").content
        link = browser.js(
            "(async () => { const a = document.getElementById('download');"
            " const bytes = new Uint8Array(await (await fetch(a.href)).arrayBuffer());"
            " return {name: a.download, size: bytes.length,"
            " head: Array.from(bytes.slice(0, 12))}; })()"
        )
        assert link["name"] == f"lipsync-{job_id}.mp4"
        assert link["size"] == len(served) and bytes(link["head"]) == served[:12] and served[4:8] == b"ftyp"
        sync = browser.js("document.getElementById('sync').textContent")
        lse_c = job["result"]["sync"]["lse_c"]
        assert f"LSE-C {lse_c:.2f}" in sync, sync
        browser.screenshot(tmp_path / "page.png")  # the finished page, for a person to look at
        # The key is remembered by this browser.
        browser.open(server.base + "/")
        assert browser.js("document.getElementById('api-key').value") == KEY
    except BaseException:
        browser.screenshot(tmp_path / "page.png")  # what the page looked like, for the failure report
        raise
