"""Several devices in one process: a job's windows spread over devices give the same frames
as one device (the random draws are fixed before the split), and the service runs one job
per device, in creation order, showing each device in /ready and /metrics.

"Devices" here are two CPU model copies: the code path is the one two GPUs take (one model
copy per device, one worker thread per device, windows handed between them).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from latentsync_core.common.errors import Cancelled
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.conditioning import sample_latents
from latentsync_core.inference.denoise import WindowNoise
from latentsync_core.inference.pipeline import LipSyncResult
from latentsync_core.media.probe import probe_video
from latentsync_core.models.loading import load_models
from tests.media_helpers import make_audio, make_clip, read_frames
from tests.server_helpers import ServerProcess

FAST = LipSyncParams(inference_steps=2, seed=77)


class TwoDeviceLender:
    """The ``DeviceLender`` protocol over one second pipeline: lent whenever it is free;
    ``keep_for`` windows, then wanted back (None: kept for the whole job)."""

    def __init__(self, helper: LipSyncPipeline, keep_for: int | None = None):
        self.helper, self.keep_for = helper, keep_for
        self.lent = False
        self.loans = 0
        self.windows_at_return: list[int] = []
        self._lock = threading.Lock()
        self._windows = 0

    def borrow(self) -> list[LipSyncPipeline]:
        with self._lock:
            if self.lent:
                return []
            self.lent, self._windows = True, 0
            self.loans += 1
            return [self.helper]

    def wanted_back(self, pipeline: LipSyncPipeline) -> bool:
        with self._lock:
            self._windows += 1
            return self.keep_for is not None and self._windows >= self.keep_for

    def give_back(self, pipeline: LipSyncPipeline) -> None:
        with self._lock:
            assert pipeline is self.helper and self.lent
            self.lent = False
            self.windows_at_return.append(self._windows)


@pytest.fixture(scope="module")
def two_pipelines(tmp_path_factory: pytest.TempPathFactory) -> tuple[LipSyncPipeline, LipSyncPipeline]:
    """Two model copies of the demo weights, as two devices of one host would hold."""
    cache = tmp_path_factory.mktemp("cache")
    first, second = (load_models("demo", cache / "none", cache, device="cpu", dtype="float32") for _ in range(2))
    assert first.unet is not second.unet
    return LipSyncPipeline(first, detect_workers=1), LipSyncPipeline(second, detect_workers=1)


@pytest.fixture(scope="module")
def looped_inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """0.6 s of video (15 frames) under 1.4 s of speech (three windows, the last a partial
    one): source frames are shown again where the video plays backwards, their moments
    reused from earlier windows."""
    folder = tmp_path_factory.mktemp("media")
    video = make_clip(media_dir / "demo1_video.mp4", folder / "v.mp4", 0.6, start=1.0)
    return video, make_audio(media_dir / "demo1_audio.wav", folder / "a.wav", 1.4)


@pytest.fixture(scope="module")
def one_device(
    two_pipelines: tuple[LipSyncPipeline, LipSyncPipeline],
    looped_inputs: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[LipSyncResult, np.ndarray]:
    """The job on the first device alone: its result and frames (a lossless master)."""
    out = tmp_path_factory.mktemp("one") / "one.mkv"
    result = two_pipelines[0].run(*looped_inputs, out, FAST)
    return result, _frames(out)


def _frames(path: Path) -> np.ndarray:
    info = probe_video(path)
    return read_frames(path, info.width, info.height)


def test_window_noise_replays_the_sequential_draws() -> None:
    """Window i's draws, replayed in any order, are the numbers one generator gives when the
    windows sample their latents one after another (upstream's order)."""
    counts, size = [16, 16, 7], 8
    noise = WindowNoise(1247, counts, size, torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(1247)
    initial = torch.randn((1, 4, 1, size, size), generator=generator)
    moments = torch.randn((16, 8, size, size), dtype=torch.float64).float()
    expected = []
    for count in counts:  # what DiagonalGaussianDistribution.sample draws, masked then reference
        masked = DiagonalGaussianDistribution(moments[:count]).sample(generator)
        reference = DiagonalGaussianDistribution(moments[:count]).sample(generator)
        expected.append((masked, reference))
    assert torch.equal(noise.initial, initial)
    for i in (2, 0, 1, 2):
        normal = noise.window(i)
        count = counts[i]
        assert torch.equal(sample_latents(moments[:count], normal[0]), expected[i][0] * 0.18215)
        assert torch.equal(sample_latents(moments[:count], normal[1]), expected[i][1] * 0.18215)


@pytest.mark.parametrize("keep_for", [None, 1], ids=["lent-whole-job", "asked-back-after-a-window"])
def test_two_devices_give_the_frames_of_one(
    two_pipelines: tuple[LipSyncPipeline, LipSyncPipeline],
    looped_inputs: tuple[Path, Path],
    one_device: tuple[LipSyncResult, np.ndarray],
    tmp_path: Path,
    keep_for: int | None,
) -> None:
    home, helper = two_pipelines
    alone, one = one_device
    lender = TwoDeviceLender(helper, keep_for)
    split = home.run(*looped_inputs, tmp_path / "two.mkv", FAST, lender=lender)

    assert alone.looped and alone.lanes == [{"device": "cpu", "windows": 3}]
    windows = [lane["windows"] for lane in split.lanes]
    assert sum(windows) == 3 and len(windows) >= 2 and min(windows) >= 1
    assert not lender.lent  # given back at the end (or when asked)
    if keep_for == 1:
        assert lender.windows_at_return[0] == 1  # returned after the window it was asked back on
    two = _frames(tmp_path / "two.mkv")
    assert one.shape == two.shape and one.shape[0] == alone.frames
    assert np.array_equal(one, two)


def test_cancel_reaches_the_borrowed_device(
    two_pipelines: tuple[LipSyncPipeline, LipSyncPipeline], looped_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A cancel stops both devices' windows; the helper is given back."""
    home, helper = two_pipelines
    video, audio = looped_inputs
    lender = TwoDeviceLender(helper)
    seen: list[str] = []
    calls = {"helper": 0}
    real_full = helper.unet.full

    def counting_full(*args, **kwargs):  # records that the helper device really worked
        calls["helper"] += 1
        return real_full(*args, **kwargs)

    helper.unet.full = counting_full
    try:
        with pytest.raises(Cancelled):
            home.run(
                video, audio, tmp_path / "o.mkv", FAST, lender=lender,
                progress=lambda e: seen.append(e.stage),
                should_cancel=lambda: calls["helper"] >= 1,
            )  # fmt: skip
    finally:
        del helper.unet.full
    assert calls["helper"] == 1  # the helper stopped at the step after the cancel
    assert not lender.lent and not (tmp_path / "o.mkv").exists()


# ---- the service with two devices --------------------------------------------------------
@pytest.fixture(scope="module")
def two_device_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("srv"), gpu_ids="cpu,cpu", detect_workers=1).start()
    yield srv
    srv.stop()


def test_service_runs_a_job_per_device_and_lends_idle_ones(
    two_device_server: ServerProcess, looped_inputs: tuple[Path, Path]
) -> None:
    srv = two_device_server
    ready = srv.client.get("/ready").json()
    assert [d["name"] for d in ready["devices"]] == ["cpu:0", "cpu:1"]
    assert all(d["loaded"] and d["device"] == "cpu" for d in ready["devices"])
    video, audio = looped_inputs

    # Alone, a job borrows the idle device for some of its windows.
    alone = srv.post_files(video, audio).json()
    assert srv.wait(alone["id"], {"succeeded", "failed"})["status"] == "succeeded"
    row = srv.db_row(alone["id"])
    lanes = json.loads(row["result_info"])["lanes"]
    assert [lane["windows"] >= 1 for lane in lanes] == [True, True] and sum(lane["windows"] for lane in lanes) == 3
    assert json.loads(row["worker"])["device"] == "cpu:0"

    # Two jobs at once: one per device, running at the same time.
    ids = [srv.post_files(video, audio).json()["id"] for _ in range(2)]
    for job_id in ids:
        assert srv.wait(job_id, {"succeeded", "failed"})["status"] == "succeeded"
    rows = [srv.db_row(job_id) for job_id in ids]
    assert {json.loads(r["worker"])["device"] for r in rows} == {"cpu:0", "cpu:1"}
    assert max(r["started_at"] for r in rows) < min(r["finished_at"] for r in rows)  # they overlapped

    metrics = srv.client.get("/metrics").text
    started = {}
    for name in ("cpu:0", "cpu:1"):
        found = re.search(rf'^latentsync_device_jobs_total{{device="{name}"}} ([0-9.]+)$', metrics, re.M)
        assert found, metrics
        started[name] = float(found.group(1))
        assert f'latentsync_device_lent{{device="{name}"}} 0.0' in metrics
    assert started["cpu:0"] >= 1 and started["cpu:1"] >= 1 and sum(started.values()) == 3, started


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "unipc"])
def test_multistep_samplers_give_the_same_frames_whatever_the_split(
    two_pipelines: tuple[LipSyncPipeline, LipSyncPipeline],
    looped_inputs: tuple[Path, Path],
    tmp_path: Path,
    sampler: str,
) -> None:
    """The multistep samplers keep state between steps: a fresh scheduler per window keeps
    the frames independent of which device ran which window (three steps: first, second
    and last-step orders all run). The two runs share a seed and nothing else."""
    home, helper = two_pipelines
    params = LipSyncParams(inference_steps=3, guidance_scale=1.0, seed=77, sampler=sampler)
    alone = home.run(*looped_inputs, tmp_path / "one.mkv", params)
    split = home.run(*looped_inputs, tmp_path / "two.mkv", params, lender=TwoDeviceLender(helper, keep_for=1))
    assert alone.lanes == [{"device": "cpu", "windows": 3}]
    assert len(split.lanes) >= 2 and min(lane["windows"] for lane in split.lanes) >= 1
    one, two = _frames(tmp_path / "one.mkv"), _frames(tmp_path / "two.mkv")
    assert one.shape == two.shape and one.shape[0] == alone.frames and np.array_equal(one, two)
