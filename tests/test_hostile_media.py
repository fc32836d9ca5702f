"""Hostile media (issue 16 items 1, 2, 3, 8, 9 and the frame count of 10): playlists and
scripts, probes that grow without bound, containers whose durations lie, huge frames, input
names replaced while a job waits, what a job reports of its output. Real ffmpeg, real files,
a real service process on loopback with demo weights."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from latentsync_core.common.errors import MediaError
from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.container import detect_demuxer
from latentsync_core.media.ffmpeg_bin import capped, run_ffmpeg
from latentsync_core.media.input_file import InputFile
from latentsync_core.media.limits import AUDIO_SLACK_S, MediaLimits
from latentsync_core.media.probe import probe
from latentsync_core.media.video_io import FrameReader
from tests.media_helpers import make_audio, make_clip
from tests.server_helpers import ServerProcess

MAX_VIDEO_S, MAX_AUDIO_S = 2, 3
MAX_PIXELS = 360 * 640  # the test clips' size: 640x480 is over it


def lavfi(dst: Path, seconds: float, *codec: str, video: bool = True, audio: bool = True) -> Path:
    """A small synthetic file (test pattern, tone) in the container ``dst``'s name implies."""
    args = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25"] if video else []
    args += ["-f", "lavfi", "-i", "sine=f=440:r=16000"] if audio else []
    run_ffmpeg([*args, "-t", f"{seconds}", *codec, str(dst)])
    return dst


def lying_matroska(src: Path, dst: Path, claimed_s: float) -> Path:
    """``src`` (a Matroska file) with its Segment Info Duration element (id 0x4489, an
    8-byte float in milliseconds) rewritten to ``claimed_s``: the header lies."""
    data = bytearray(src.read_bytes())
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element"
    data[at + 3 : at + 11] = struct.pack(">d", claimed_s * 1000.0)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def files(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    clip = make_clip(media_dir / "demo1_video.mp4", d / "clip.mp4", 1.2, start=1.0)
    long_mkv = d / "long.mkv"
    run_ffmpeg(["-stream_loop", "3", "-i", str(clip), "-t", "4", "-an", "-c:v", "copy", str(long_mkv)])
    long_mka = lavfi(d / "long.mka", 5.0, "-c:a", "flac", video=False)
    odd = d / "odd.mp4"  # odd width and height (4:4:4: H.264 4:2:0 needs even ones)
    run_ffmpeg(["-ss", "1", "-t", "1.2", "-i", str(media_dir / "demo1_video.mp4"), "-vf", "scale=321:571,fps=25",
                "-c:v", "libx264", "-pix_fmt", "yuv444p", "-an", str(odd)])  # fmt: skip
    return {
        "clip": clip,
        "speech": make_audio(media_dir / "demo1_audio.wav", d / "speech.wav", 1.0),
        "speech_2s5": make_audio(media_dir / "demo1_audio.wav", d / "speech_2s5.wav", 2.5),
        "lying_video": lying_matroska(long_mkv, d / "lying_video.mkv", 1.0),
        "lying_audio": lying_matroska(long_mka, d / "lying_audio.mka", 1.0),
        "big": make_clip(media_dir / "demo1_video.mp4", d / "big.mp4", 0.4, width=640, height=480),
        "odd": odd,
        "secret": make_clip(media_dir / "demo1_video.mp4", d / "secret.mp4", 1.2, extra_filter="hflip"),
        "dir": d,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(
        tmp_path_factory.mktemp("srv"), max_video_s=MAX_VIDEO_S, max_audio_s=MAX_AUDIO_S, max_pixels=MAX_PIXELS
    ).start()
    yield srv
    srv.stop()


def _code(r: object) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]  # type: ignore[attr-defined]


# ---- item 1: the container comes from the bytes; playlists and scripts are refused ------------
@pytest.mark.parametrize(
    ("name", "codec", "video", "demuxer"),
    [
        ("v.mp4", ("-c:v", "libx264", "-c:a", "aac"), True, "mov"),
        ("v.mkv", ("-c:v", "libx264", "-c:a", "aac"), True, "matroska"),
        ("v.webm", ("-c:v", "libvpx", "-c:a", "libopus"), True, "matroska"),
        ("v.avi", ("-c:v", "mpeg4", "-c:a", "mp3"), True, "avi"),
        ("v.ts", ("-c:v", "libx264", "-c:a", "aac"), True, "mpegts"),
        ("a.wav", (), False, "wav"),
        ("a.mp3", ("-id3v2_version", "3", "-metadata", "title=t"), False, "mp3"),
        ("a.flac", (), False, "flac"),
        ("a.ogg", ("-c:a", "libvorbis"), False, "ogg"),
        ("a.m4a", (), False, "mov"),
        ("a.aac", (), False, "aac"),
    ],
)
def test_the_container_is_read_from_the_bytes_not_the_name(
    tmp_path: Path, name: str, codec: tuple[str, ...], video: bool, demuxer: str
) -> None:
    made = lavfi(tmp_path / name, 0.5, *codec, *(("-pix_fmt", "yuv420p") if video else ()), video=video)
    renamed = made.rename(tmp_path / "upload.m3u8")  # a client's name decides nothing
    assert detect_demuxer(renamed) == demuxer
    info = probe(renamed)
    assert info.has_audio and info.has_video == video and 0.3 < info.duration < 0.8


@pytest.mark.parametrize(
    "text",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        b"\xef\xbb\xbf#EXTINF:10,\n{secret}\n",
        b"ffconcat version 1.0\nfile {secret}\n",
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n",
    ],
)
def test_playlists_and_scripts_are_refused_whatever_their_name(tmp_path: Path, text: bytes) -> None:
    secret = tmp_path / "secret.mp4"
    lavfi(secret, 0.5, "-pix_fmt", "yuv420p")
    playlist = tmp_path / "video.mp4"
    playlist.write_bytes(text.replace(b"{secret}", str(secret).encode()))
    with pytest.raises(MediaError) as err:
        probe(playlist)
    assert err.value.code == "PLAYLIST_NOT_ALLOWED"


def test_an_uploaded_playlist_never_reads_a_server_file(server: ServerProcess, files: dict[str, Path]) -> None:
    """The .m3u8 names another file of the server by absolute path (here a clip; on a real
    service another job's result.mp4): refused with 400 in both fields; no job is made."""
    playlist = files["dir"] / "steal.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.2,\nfile://{files['secret']}\n#EXT-X-ENDLIST\n")
    for video, audio in [(playlist, files["speech"]), (files["clip"], playlist)]:
        r = server.post_files(video, audio)
        assert _code(r) == (400, "PLAYLIST_NOT_ALLOWED"), r.text
    assert server.client.get("/jobs").json()["total"] == 0


# ---- item 2: a self-listing playlist; probes are capped and off the event loop ----------------
def test_a_self_listing_playlist_gets_a_4xx_while_the_server_stays_responsive(
    server: ServerProcess, files: dict[str, Path]
) -> None:
    me = files["dir"] / "self.m3u8"
    entry = "#EXTINF:1,\n" + str(server.data_dir / "jobs") + "/self.m3u8\n"
    me.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + entry * 3)
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            start = time.perf_counter()
            server.client.get("/health")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        r = server.post_files(me, files["speech"])
    finally:
        done.set()
        poller.join()
    assert _code(r) == (400, "PLAYLIST_NOT_ALLOWED"), r.text
    assert latencies and max(latencies) < 1.0, latencies


def test_a_probe_child_is_held_to_its_memory_and_time(tmp_path: Path, files: dict[str, Path]) -> None:
    # The wrapper's limit is real: a child asking for more address space fails.
    grab = capped([sys.executable, "-c", "bytearray(512 << 20)"], 256 << 20)
    assert subprocess.run(grab, capture_output=True, check=False).returncode != 0
    assert subprocess.run(capped([sys.executable, "-c", "bytearray(8 << 20)"], 256 << 20), check=False).returncode == 0
    # A probe under a cap too small for ffmpeg itself fails cleanly instead of growing.
    with pytest.raises(MediaError) as err:
        probe(files["clip"], MediaLimits(probe_memory_mb=16))
    assert err.value.code == "INVALID_MEDIA"
    with pytest.raises(MediaError) as err:
        probe(files["clip"], MediaLimits(probe_timeout_s=1e-3))
    assert err.value.code == "PROBE_FAILED"


# ---- item 3: limits hold for what is decoded, not what the header says ------------------------
def test_decoders_stop_at_the_limit_whatever_the_header_claims(files: dict[str, Path]) -> None:
    assert probe(files["lying_video"]).duration == pytest.approx(1.0, abs=0.05)  # the lie
    assert probe(files["lying_audio"]).duration == pytest.approx(1.0, abs=0.05)
    limits = MediaLimits(max_video_s=MAX_VIDEO_S, max_audio_s=MAX_AUDIO_S)
    max_frames = limits.max_video_frames(25)
    with FrameReader(files["lying_video"], 360, 640, max_frames=max_frames) as reader:
        with pytest.raises(MediaError) as err:
            for _ in reader:
                pass
        assert err.value.code == "VIDEO_TOO_LONG" and reader.count == max_frames + 1  # stopped at once
    with pytest.raises(MediaError) as err:
        load_audio(files["lying_audio"], max_seconds=MAX_AUDIO_S)
    assert err.value.code == "AUDIO_TOO_LONG"
    # Within the limit the same file decodes whole: 5 s of samples.
    assert len(load_audio(files["lying_audio"], max_seconds=5.0 - AUDIO_SLACK_S + 0.5)) == 5 * 16000


def test_a_job_fails_with_the_limit_code_when_the_decoded_media_passes_it(
    server: ServerProcess, files: dict[str, Path]
) -> None:
    """Both uploads pass the check (their headers claim 1 s); the job decodes and fails."""
    for video, audio, code in [
        (files["lying_video"], files["speech_2s5"], "VIDEO_TOO_LONG"),
        (files["clip"], files["lying_audio"], "AUDIO_TOO_LONG"),
    ]:
        r = server.post_files(video, audio)
        assert r.status_code == 202, r.text
        job = server.wait(r.json()["id"], {"succeeded", "failed"})
        assert (job["status"], (job["error"] or {}).get("code")) == ("failed", code), job


# ---- item 8: a pixel limit on the decoded stream's size -------------------------------------
def test_frames_over_the_pixel_limit_are_refused(server: ServerProcess, files: dict[str, Path]) -> None:
    r = server.post_files(files["big"], files["speech"])
    assert _code(r) == (400, "FRAME_TOO_LARGE"), r.text
    assert "640x480" in r.json()["error"]["message"]
    limits = MediaLimits(max_pixels=MAX_PIXELS)
    limits.check_video(probe(files["clip"]))  # 360x640: exactly at the limit, accepted
    with pytest.raises(MediaError):
        limits.check_video(probe(files["big"]))


# ---- item 9: the checked file is opened once, never through a symlink, never blocking ----------
def test_an_input_file_is_a_regular_file_opened_once(tmp_path: Path, files: dict[str, Path]) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(files["secret"])
    with pytest.raises(MediaError) as err:
        InputFile(link)
    assert err.value.code == "INPUT_NOT_REGULAR"
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(MediaError) as err:
        InputFile(fifo)  # no writer: a blocking open would wait forever
    assert err.value.code == "INPUT_NOT_REGULAR" and time.perf_counter() - start < 5
    # Held open, the file is read as it was opened whatever its name points to afterwards.
    name = tmp_path / "input.mp4"
    name.write_bytes(files["clip"].read_bytes())
    with InputFile(name) as held:
        name.unlink()
        name.symlink_to(files["secret"])
        assert held.path.read_bytes() == files["clip"].read_bytes()
        assert probe(held.path).width == 360


def test_a_queued_jobs_input_replaced_by_a_symlink_or_a_fifo_fails_cleanly(
    server: ServerProcess, files: dict[str, Path]
) -> None:
    """While a long job holds the worker, two queued jobs get their input names replaced:
    by a symlink to a file outside the job's folder (refused: the job opens its input with
    O_NOFOLLOW, so it fails rather than reading what the name points to now; the original
    bytes are gone with the name), and by a FIFO (opened without blocking, refused as not a
    regular file). Neither job hangs the worker; a failed job can be deleted."""
    blocker = server.post_files(files["clip"], files["speech"], inference_steps=200).json()
    jobs = [server.post_files(files["clip"], files["speech"]).json() for _ in range(2)]
    for job, replace in zip(jobs, ("symlink", "fifo"), strict=True):
        path = Path(server.db_row(job["id"])["video_path"])
        path.unlink()
        if replace == "symlink":
            path.symlink_to(files["secret"])
        else:
            os.mkfifo(path)
    assert server.client.delete(f"/jobs/{blocker['id']}").status_code in (200, 202)
    for job in jobs:
        done = server.wait(job["id"], {"succeeded", "failed", "canceled"}, timeout=120)
        assert (done["status"], done["error"]["code"]) == ("failed", "INPUT_NOT_REGULAR"), done
        assert server.client.delete(f"/jobs/{job['id']}").status_code == 204


# ---- item 10 (part): what a job reports is what its file has ----------------------------------
def test_a_job_reports_the_frames_and_size_its_file_has(server: ServerProcess, files: dict[str, Path]) -> None:
    r = server.post_files(files["odd"], files["speech"])
    assert r.status_code == 202, r.text
    job = server.wait(r.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    out = files["dir"] / "odd_result.mp4"
    out.write_bytes(server.client.get(f"/jobs/{job['id']}/result").content)
    info = probe(out)
    with FrameReader(out, info.width, info.height) as reader:
        frames = sum(1 for _ in reader)
    result = job["result"]
    assert (result["frames"], result["width"], result["height"]) == (frames, info.width, info.height)
