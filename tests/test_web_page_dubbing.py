"""The page's dubbing controls (issue 26 item 4) in a real headless Chromium against a real
demo service: picking a video lists its faces as thumbnails (``POST /faces``), a click
chooses one, every job parameter is sent as set, the result plays beside the source, the
face used is shown, and the key's recent jobs are listed with their status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.face_media import DEMO_AUDIO, side_by_side
from tests.media_helpers import make_audio
from tests.server_helpers import KEY, ServerProcess
from tests.test_web_page import Browser


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "srv", detect_workers=1).start()  # API keys on
    yield srv
    srv.stop()


def _set(browser: Browser, element_id: str, value: str) -> None:
    """As a person choosing an option or typing: the value, then the events a form sees."""
    browser.js(
        f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); e.value = {json.dumps(value)};"
        " e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); return e.value; })()"
    )


def test_pick_a_face_from_its_thumbnail_set_every_parameter_and_see_the_result(
    server: ServerProcess, browser: Browser, tmp_path: Path
) -> None:
    video = side_by_side(tmp_path / "two.mp4", seconds=2.0)  # two people: tracks 0 (left) and 1 (right)
    speech = make_audio(DEMO_AUDIO, tmp_path / "speech.wav", 0.6, start=2.0)
    try:
        browser.open(server.base + "/")
        browser.type_into("#api-key", KEY)
        browser.set_files("#video", video)  # the faces are looked for at once
        browser.wait_for(
            "document.querySelectorAll('#face-tracks .face img').length === 2 && [...document.querySelectorAll("
            "'#face-tracks .face img')].every(i => i.src.startsWith('data:image/jpeg') && i.naturalWidth === 128)",
            120,
        )
        assert "2 faces found" in browser.js("document.getElementById('faces-status').textContent")
        labels = browser.js("[...document.querySelectorAll('#face-tracks .face')].map(b => b.dataset.track)")
        assert labels == ["0", "1"]
        browser.js("document.querySelector('#face-tracks .face[data-track=\"1\"]').click()")
        assert browser.js("document.getElementById('face').value") == "track:1"
        pressed = browser.js("[...document.querySelectorAll('#face-tracks .face')].map(b => b.ariaPressed)")
        assert pressed == ["false", "true"]

        browser.set_files("#audio", speech)
        for element_id, value in [("steps", "1"), ("guidance", "2"), ("seed", "5")]:
            _set(browser, element_id, value)
        choices = [("deepcache", "true"), ("sync-mode", "loop"), ("sampler", "dpmpp_2m"), ("quality", "fast")]
        for element_id, value in choices:
            options = browser.js(f"[...document.querySelectorAll('#{element_id} option')].map(o => o.value)")
            assert value in options, (element_id, options)  # one of the list's own choices
            _set(browser, element_id, value)
        modes = browser.js("[...document.querySelectorAll('#sync-mode option')].map(o => o.value)")
        assert modes == ["", "bounce", "loop", "cut_off", "silence", "remap"]
        browser.js("document.getElementById('submit').click()")
        browser.wait_for(
            "document.getElementById('player').duration > 0 && document.getElementById('source').duration > 0", 240
        )
        assert not browser.js("document.getElementById('error').hidden === false")
        job_id = browser.js("document.getElementById('job-id').textContent")
        job = server.client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["params"] == {
            "inference_steps": 1,
            "guidance_scale": 2.0,
            "seed": 5,
            "enable_deepcache": True,
            "sync_mode": "loop",
            "sampler": "dpmpp_2m",
            "face": "track:1",
            "quality": "fast",
        }
        assert [s["track"] for s in job["result"]["face"]["shots"]] == [1]
        shown = browser.js("document.getElementById('face-choice').textContent")
        assert shown == "Face track:1: shot 0: face 1 (track)", shown
        # Source and result side by side: two players in one row.
        boxes = browser.js(
            "['source', 'player'].map(id => { const r = document.getElementById(id).getBoundingClientRect();"
            " return [r.left, r.top, r.width]; })"
        )
        assert boxes[0][0] + boxes[0][2] <= boxes[1][0] and abs(boxes[0][1] - boxes[1][1]) < 2 and boxes[0][2] > 100
        # The recent jobs list shows this job, finished.
        browser.wait_for(
            f"[...document.querySelectorAll('#job-list li')].some(li => li.dataset.id === '{job_id}'"
            " && li.textContent.includes('succeeded'))",
            30,
        )
        browser.screenshot(tmp_path / "page.png")
    except BaseException:
        browser.screenshot(tmp_path / "page.png")
        raise
