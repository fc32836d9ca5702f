"""Results that play while they render (issue 21 item 5): the library's growing fragmented
MP4 (``LiveMP4Writer``) decodes window by window and only ever grows; ``GET /jobs/{id}/stream``
of a real service serves a running job's frames (with the speech) before the job ends, the
whole job after, and nothing to an unknown id or another key."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from latentsync_core.media.ffmpeg_bin import ffmpeg_exe
from latentsync_core.media.live_mp4 import LiveMP4Writer, complete_fragments, init_segment_size, stream_codecs
from tests.media_helpers import make_audio, make_clip
from tests.server_helpers import AUTH, KEY, ServerProcess

WINDOW = 16
OTHER_KEY = "another-tenant-key-456"


def decoded(path: Path) -> tuple[int, float]:
    """(video frames, seconds of audio) that ffmpeg decodes from ``path`` (a prefix of a
    stream may end inside a fragment: what is complete is decoded)."""

    def run(stream: str) -> str:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", stream, "-f", "null", "-"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stderr

    frames = re.findall(r"frame=\s*(\d+)", run("0:v:0"))
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", run("0:a:0?"))
    seconds = int(times[-1][0]) * 3600 + int(times[-1][1]) * 60 + float(times[-1][2]) if times else 0.0
    return (int(frames[-1]) if frames else 0), seconds


def wait_decoded(path: Path, frames: int, timeout: float = 60) -> tuple[int, float]:
    deadline = time.time() + timeout
    while True:
        got = decoded(path)
        if got[0] >= frames or time.time() > deadline:
            return got
        time.sleep(0.2)


# ---- the library's writer ---------------------------------------------------------------
def test_the_stream_decodes_window_by_window_and_only_grows(media_dir: Path, tmp_path: Path) -> None:
    speech = make_audio(media_dir / "demo1_audio.wav", tmp_path / "speech.wav", 2.6)
    path = tmp_path / "stream.mp4"
    width, height = 97, 64  # odd: padded to even for 4:2:0 as the output is
    writer = LiveMP4Writer(path, width, height, speech)
    prefixes: list[bytes] = []
    rng = np.random.default_rng(0)
    for window in range(4):
        for _ in range(WINDOW):
            writer.write(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        writer.flush()
        if window == 3:
            break  # the last: its end waits for the end of the speech (ffmpeg interleaves by time)
        # Every frame of the window but its last is out: the muxer closes a fragment when the
        # next packet comes (the last one follows with the next window's first frame).
        frames, audio = wait_decoded(path, WINDOW * window + WINDOW - 1)
        assert frames >= WINDOW * window + WINDOW - 1, (window, frames)
        assert audio >= (WINDOW * window + WINDOW - 1) / 25 - 0.1, (window, audio)  # the speech is muxed in
        prefixes.append(path.read_bytes())
    writer.close()
    assert writer.failed is None and writer.frames == 4 * WINDOW
    final = path.read_bytes()
    assert all(final.startswith(prefix) for prefix in prefixes)  # appended to, never rewritten
    frames, audio = decoded(path)
    assert frames == 4 * WINDOW and audio >= 2.5
    init = init_segment_size(final)
    assert init is not None and final[4:8] == b"ftyp" and init_segment_size(final[: init - 1]) is None
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}, mp4a\.40\.2", stream_codecs(final[:init]))
    # Complete fragments (what a player can show) only grow; a cut one is not counted.
    counts = [complete_fragments(prefix) for prefix in [final[:init], *prefixes, final]]
    assert counts[0] == 0 and counts[1] >= 1 and counts == sorted(counts), counts
    last = final.rindex(b"mdat") + 4  # inside the last fragment's media data
    assert complete_fragments(final[:last]) == counts[-1] - 1


def test_a_dead_encoder_stops_the_stream_not_the_caller(tmp_path: Path) -> None:
    writer = LiveMP4Writer(tmp_path / "s.mp4", 32, 32, None)
    writer._proc.kill()  # as a crash of the encoder would
    writer._proc.wait()
    for _ in range(200):  # more than a pipe buffer: the write fails
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.flush()
    writer.close()
    assert writer.failed and "encoder stopped" in writer.failed


# ---- the service ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("srv"), api_keys=f"{KEY},{OTHER_KEY}").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def job_inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("inputs")
    video = make_clip(media_dir / "demo1_video.mp4", d / "clip.mp4", 2.2, start=1.0)
    return video, make_audio(media_dir / "demo1_audio.wav", d / "speech.wav", 2.0)  # 4 windows


class Follower:
    """Reads the stream on a thread, keeping every byte; ``snapshot`` writes what came so far."""

    def __init__(self, server: ServerProcess, job_id: str):
        self.data = bytearray()
        self.status: int | None = None
        self.content_type = ""
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, job_id), daemon=True)
        self._thread.start()

    def _run(self, server: ServerProcess, job_id: str) -> None:
        try:
            with httpx.stream("GET", f"{server.base}/jobs/{job_id}/stream", headers=AUTH, timeout=120) as r:
                self.status, self.content_type = r.status_code, r.headers.get("content-type", "")
                for chunk in r.iter_raw():
                    self.data.extend(chunk)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def snapshot(self, path: Path) -> Path:
        path.write_bytes(bytes(self.data))
        return path


def test_a_running_job_streams_its_finished_windows_then_the_whole_result(
    server: ServerProcess, job_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    video, speech = job_inputs
    # More steps than the module's default: each window takes long enough to look in between.
    job = server.post_files(video, speech, inference_steps=3).json()
    follower = Follower(server, job["id"])  # asked while queued: waits for the first window
    seen_running = None
    deadline = time.time() + 240
    while time.time() < deadline and not follower.done.is_set():
        time.sleep(0.3)
        if len(follower.data) < 2000:
            continue
        frames, audio = decoded(follower.snapshot(tmp_path / "partial.mp4"))
        status = server.client.get(f"/jobs/{job['id']}").json()["status"]
        if frames >= WINDOW and status == "running":
            seen_running = (frames, audio, status)
            break
    assert seen_running is not None, (len(follower.data), follower.error, server.client.get(f"/jobs/{job['id']}").text)
    frames, audio, _ = seen_running
    assert audio >= frames / 25 - 0.1  # the speech is there, as far as the frames go
    assert follower.status == 200 and re.fullmatch(
        r'video/mp4; codecs="avc1\.[0-9a-f]{6}, mp4a\.40\.2"', follower.content_type
    )

    done = server.wait(job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert follower.done.wait(30) and follower.error is None  # the response ends with the job
    total = done["result"]["frames"]
    assert total > 3 * WINDOW, done  # one frame per 40 ms of speech (Whisper's windows): 52
    streamed = decoded(follower.snapshot(tmp_path / "streamed.mp4"))
    assert streamed[0] == total and streamed[1] >= 1.95

    # Asked again after the end: the result (one copy on disk: the live file went with the job).
    folder = server.data_dir / "jobs" / job["id"]
    assert not (folder / "stream.mp4").exists()
    again = server.client.get(f"/jobs/{job['id']}/stream")
    assert again.status_code == 200 and again.content == (folder / "result.mp4").read_bytes()
    part = server.client.get(f"/jobs/{job['id']}/stream", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == again.content[:100]
    bad = server.client.get(f"/jobs/{job['id']}/stream", headers={"Range": "bytes=abc"})
    assert bad.status_code == 416 and bad.json()["error"]["code"] == "INVALID_RANGE", bad.text


def test_unknown_and_other_tenants_jobs_have_no_stream(
    server: ServerProcess, job_inputs: tuple[Path, Path], media_dir: Path, tmp_path: Path
) -> None:
    unknown = server.client.get("/jobs/no-such-job/stream")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "JOB_NOT_FOUND"
    video, _ = job_inputs
    short = make_audio(media_dir / "demo1_audio.wav", tmp_path / "short.wav", 0.4)
    job = server.post_files(video, short).json()
    other = httpx.get(
        f"{server.base}/jobs/{job['id']}/stream", headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=30
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert server.wait(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    mine = server.client.get(f"/jobs/{job['id']}/stream")
    assert mine.status_code == 200 and mine.content[4:8] == b"ftyp"


# ---- the page ---------------------------------------------------------------------------------
def test_the_page_plays_the_stream_before_the_job_ends(
    server: ServerProcess, job_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """In a real headless Chromium: the page's live player has frames and plays while the job
    still runs (Media Source Extensions fed by the stream, the API key sent), and gives way to
    the result when it is done."""
    from tests.test_web_page import Browser

    video, speech = job_inputs
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.open(server.base + "/")
        browser.type_into("#api-key", KEY)
        browser.set_files("#video", video)
        browser.set_files("#audio", speech)
        browser.js("document.getElementById('steps').value = '3'")  # in the closed Options
        browser.js("document.getElementById('submit').click()")
        job_id = browser.wait_for(
            "document.getElementById('job-id').textContent || document.getElementById('error').textContent", 60
        )
        assert browser.js("document.getElementById('error').hidden"), job_id
        live = None
        deadline = time.time() + 240
        while time.time() < deadline:
            state = browser.js(
                "(() => { const p = document.getElementById('live-player');"
                " return {shown: !document.getElementById('live').hidden, time: p.currentTime,"
                " buffered: p.buffered.length ? p.buffered.end(0) : 0}; })()"
            )
            status = server.client.get(f"/jobs/{job_id}").json()["status"]
            if state["shown"] and state["time"] > 0 and status == "running":
                live = state
                break
            assert status in ("queued", "running"), (status, state)
            time.sleep(0.2)
        assert live is not None and live["buffered"] >= 15 / 25 - 0.05, live  # the first window, at least
        assert server.wait(job_id, {"succeeded", "failed"})["status"] == "succeeded"
        browser.wait_for("!document.getElementById('result').hidden && document.getElementById('live').hidden", 60)
    except BaseException:
        browser.screenshot(tmp_path / "page.png")
        raise
    finally:
        browser.close()
