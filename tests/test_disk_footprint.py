"""Per-job disk (issue 16 item 8): the frame store keeps 1080p frames losslessly in less
space than raw, a job's worst-case disk need is known from its probes, and a service
refuses a job over MAX_JOB_DISK_GB at upload. Real frames of the bundled clip, real
ffprobe, a real service process on loopback with demo weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.inference.length_modes import job_extent
from latentsync_core.inference.source import SourcePlan, ping_pong_index
from latentsync_core.media.limits import MediaLimits
from latentsync_core.media.probe import check_inputs, probe_audio, probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.storage.frame_store import FrameStore
from latentsync_core.storage.job_disk import MOMENT_BYTES_PER_FRAME, estimate_job_disk, max_frame_bytes
from tests.media_helpers import make_audio, make_clip
from tests.server_helpers import ServerProcess

W, H = 1080, 1920  # the bundled clip


def _frames(video: Path, count: int, step: int = 1) -> list[np.ndarray]:
    out = []
    with FrameReader(video, W, H) as reader:
        for i, frame in enumerate(reader):
            if i % step == 0:
                out.append(frame.copy())
            if len(out) == count:
                return out
    return out


@pytest.fixture(scope="module")
def hd_frames(media_dir: Path) -> list[np.ndarray]:
    """Six 1080x1920 frames of the clip, a second apart, and one of uniform noise (what
    no lossless coder can shrink)."""
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return [*_frames(media_dir / "demo1_video.mp4", 6, step=25), noise]


def test_the_store_gives_back_every_frame_bit_exactly_in_less_space(
    hd_frames: list[np.ndarray], tmp_path: Path
) -> None:
    store = FrameStore(tmp_path / "frames.store", H, W, threads=2)
    for frame in hd_frames:
        store.append(frame)
    backwards = list(range(len(hd_frames)))[::-1]  # the ping-pong loop reads backwards
    for i, got in zip(backwards, store.get_many(backwards), strict=True):
        assert got.dtype == np.uint8 and np.array_equal(got, hd_frames[i]), i
    assert np.array_equal(store.get(0), hd_frames[0])
    on_disk = (tmp_path / "frames.store").stat().st_size
    assert on_disk == store.bytes_written
    raw = H * W * 3
    video_bytes = on_disk - store._index[-1][1]
    assert video_bytes < 0.6 * raw * (len(hd_frames) - 1)  # natural frames compress (about 29% of raw)
    assert raw <= store._index[-1][1] <= max_frame_bytes(H, W)  # noise does not, within the bound
    with pytest.raises(IndexError):
        store.get(len(hd_frames))
    store.close()
    assert not (tmp_path / "frames.store").exists()


def test_the_store_stops_at_its_byte_limit(hd_frames: list[np.ndarray], tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "frames.store", H, W, max_bytes=3 * 2**20, threads=1)
    with pytest.raises(CodedError) as err:
        for frame in hd_frames * 2:
            store.append(frame)
        store.flush()
    assert err.value.code == "JOB_TOO_LARGE_FOR_DISK" and "GiB" in err.value.message
    assert (tmp_path / "frames.store").stat().st_size <= 3 * 2**20
    store.close()


def test_a_looping_plans_windows_are_the_decoded_frames_in_ping_pong_order(media_dir: Path, tmp_path: Path) -> None:
    """What the pipeline composites from: the store path gives exactly the frames a
    decode gives (so the output is unchanged by the compression)."""
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c.mp4", 0.4, width=W, height=H, audio=False)
    info = probe_video(clip)
    src = _frames(clip, 100)
    store = FrameStore(tmp_path / "frames.store", H, W)
    for frame in src:
        store.append(frame)
    n = len(src)
    plan = SourcePlan(info, np.zeros((n, 2, 3), np.float32), np.ones(n, bool), store,
                      np.zeros((n, 2, 3), np.float32), np.zeros((n, 4), np.float32), True)  # fmt: skip
    n_out = 2 * n + 5  # forward, backward, forward again
    with plan:
        got = torch.cat([w.frames for w in plan.windows(clip, n_out)]).numpy()
    want = np.stack([src[ping_pong_index(j, n)] for j in range(n_out)])
    assert np.array_equal(got, want)


def test_the_estimate_for_a_60_s_1080p_job() -> None:
    frame_bound = H * W * 3 + H * W * 3 // 128 + 4096
    loops = estimate_job_disk(W, H, video_s=60, audio_s=60)  # 1500 frames: the store is kept
    assert loops.frame_store == 1500 * frame_bound
    assert 1500 * H * W * 3 < loops.frame_store < 1.01 * 1500 * H * W * 3
    assert loops.moments == 1500 * 2 * 8 * 64 * 64 * 4 == 1500 * MOMENT_BYTES_PER_FRAME
    assert loops.output == 1500 * W * H // 8 + 60 * 20_000
    assert loops.total == loops.frame_store + loops.moments + loops.output
    assert 9.4 < loops.total / 2**30 < 9.5
    short_speech = estimate_job_disk(W, H, video_s=60, audio_s=10)  # 250 of 1500 frames: streamed, no store
    assert short_speech.frame_store == 0 and short_speech.moments == 250 * MOMENT_BYTES_PER_FRAME
    short_video = estimate_job_disk(W, H, video_s=10, audio_s=60)  # 250 source frames looped to 1500
    assert short_video.frame_store == 250 * frame_bound and short_video.output == loops.output


def test_the_estimate_follows_the_sync_mode_and_the_live_stream() -> None:
    """60 s of video, 10 s of speech (A = 250, V = 1500): each mode reads, shows and stores
    what ``length_modes`` says it does; the live stream is a second output while it runs."""
    frame_bound = H * W * 3 + H * W * 3 // 128 + 4096
    bounce = estimate_job_disk(W, H, 60, 10)
    assert estimate_job_disk(W, H, 60, 10, job_extent("bounce", 250, 1500)) == bounce
    assert estimate_job_disk(W, H, 60, 10, job_extent("loop", 250, 1500)) == bounce
    silence = estimate_job_disk(W, H, 60, 10, job_extent("silence", 250, 1500))  # the whole video, silent after 10 s
    assert silence.output == 1500 * W * H // 8 + 60 * 20_000 and silence.moments == 1500 * MOMENT_BYTES_PER_FRAME
    assert silence.frame_store == 0  # read in order: no store
    remap = estimate_job_disk(W, H, 60, 10, job_extent("remap", 250, 1500))  # the whole video read, 250 shown
    assert remap.frame_store == 1500 * frame_bound and remap.output == bounce.output
    cut = estimate_job_disk(W, H, 10, 60, job_extent("cut_off", 1500, 250))  # the speech cut to the video
    assert cut.output == 250 * W * H // 8 + 10 * 20_000 and cut.moments == 250 * MOMENT_BYTES_PER_FRAME
    streamed = estimate_job_disk(W, H, 60, 10, live_stream=True)
    assert streamed.stream == streamed.output == bounce.output and streamed.total == bounce.total + bounce.output


def test_check_inputs_refuses_a_job_over_the_disk_limit(media_dir: Path, tmp_path: Path) -> None:
    video, audio = media_dir / "demo1_video.mp4", media_dir / "demo1_audio.wav"
    vinfo, ainfo = probe_video(video), probe_audio(audio)
    need = estimate_job_disk(vinfo.width, vinfo.height, vinfo.duration, ainfo.duration).total
    assert MediaLimits(max_job_disk_bytes=need).check_disk(vinfo, ainfo).total == need
    with pytest.raises(CodedError) as err:
        check_inputs(video, audio, MediaLimits(max_job_disk_bytes=need - 1))
    assert err.value.code == "JOB_TOO_LARGE_FOR_DISK"


@pytest.fixture(scope="module")
def small_clip(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("disk")
    return {
        "clip": make_clip(media_dir / "demo1_video.mp4", d / "clip.mp4", 1.2),  # 360x640, 30 frames
        "short": make_audio(media_dir / "demo1_audio.wav", d / "short.wav", 0.4),  # 10 frames stored
        "long": make_audio(media_dir / "demo1_audio.wav", d / "long.wav", 2.5),  # loops: 30 frames stored
    }


def test_the_service_refuses_a_job_over_max_job_disk_gb_at_upload(small_clip: dict[str, Path], tmp_path: Path) -> None:
    duration = probe_video(small_clip["clip"]).duration
    want = {  # the service writes the live stream too (LATENTSYNC_LIVE_STREAM, on by default)
        k: estimate_job_disk(360, 640, duration, probe_audio(small_clip[k]).duration, live_stream=True)
        for k in ("short", "long")
    }
    limit = 12 * 2**20  # between the two: the looping job needs ~29 MiB, the short one ~9 MiB
    assert want["short"].total < limit < want["long"].total
    server = ServerProcess(tmp_path / "srv", max_job_disk_gb=limit / 2**30).start()
    try:
        r = server.post_files(small_clip["clip"], small_clip["long"])
        assert r.status_code == 413 and r.json()["error"]["code"] == "JOB_TOO_LARGE_FOR_DISK", r.text
        message = r.json()["error"]["message"]  # the estimate and the limit
        assert f"{want['long'].total / 2**30:.2f} GiB" in message and f"{limit / 2**30:.2f} GiB" in message
        assert server.client.get("/jobs").json()["total"] == 0
        assert list((server.data_dir / "jobs").iterdir()) == []  # the upload was removed
        ok = server.post_files(small_clip["clip"], small_clip["short"])
        assert ok.status_code == 202, ok.text
        assert ok.json()["disk_estimate_bytes"] == want["short"].total
        assert server.db_row(ok.json()["id"])["disk_estimate_bytes"] == want["short"].total
    finally:
        server.stop()
