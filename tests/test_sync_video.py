"""Scoring whole videos (latentsync_core.sync.video, .track, .plot) on real media: face
tracking and upstream's crops, the report and its JSON and PNG, the coded errors, and a
known audio shift through the whole path (video file -> track -> crops -> audio slice)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from latentsync_core.audio import mfcc
from latentsync_core.common.errors import CodedError
from latentsync_core.media.ffmpeg_bin import run_ffmpeg
from latentsync_core.media.video_io import FrameReader, VideoWriter
from latentsync_core.models import SyncNetV2
from latentsync_core.sync import SyncReport, load_syncnet_v2, score_crops, score_video
from latentsync_core.sync.plot import write_plot
from latentsync_core.sync.track import (
    FaceCrops,
    Track,
    build_tracks,
    crop_face,
    longest_track,
    running_median,
    smooth_track,
    track_and_crop,
)
from latentsync_core.vision.face_detection import make_face_detector
from latentsync_core.weights.official import MissingWeightsError
from tests.media_helpers import make_audio, make_clip
from tests.sync_helpers import EnvelopeNet

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_VIDEO = ASSETS / "demo1_video.mp4"
DEMO_AUDIO = ASSETS / "demo1_audio.wav"
JSON_KEYS = {"offset_frames", "offset_ms", "lse_c", "lse_d", "weights", "frames_scored", "per_second_confidence"}


@pytest.fixture(scope="module")
def demo_net() -> nn.Module:
    net, label = load_syncnet_v2(Path("/nonexistent"), "demo")  # demo weights need no folder
    assert label == "demo"
    return net


@pytest.fixture(scope="module")
def detector():
    return make_face_detector(None)  # the embedded dlib detector


@pytest.fixture(scope="module")
def clip25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(DEMO_VIDEO, tmp_path_factory.mktemp("clips") / "demo_2s.mp4", seconds=2, start=2)


@pytest.fixture(scope="module")
def report25(clip25: Path, demo_net: nn.Module, detector) -> SyncReport:
    return score_video(clip25, syncnet=demo_net, detector=detector)


@pytest.fixture(scope="module")
def pcm() -> np.ndarray:
    with wave.open(str(DEMO_AUDIO)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _clip_weighted_mean(report: SyncReport) -> float:
    starts = report.first_frame + np.arange(report.frames_scored - 5)  # one clip per start frame
    counts = dict(zip(*np.unique(starts // 25, return_counts=True), strict=True))
    return sum(counts[s] * c for s, c in report.per_second_confidence) / len(starts)


# ---------------------------------------------------------------- a real talking head


def test_report_of_the_demo_clip(report25: SyncReport) -> None:
    r = report25
    print(f"demo clip (random weights): {r.to_json()}")
    assert r.weights == "demo" and r.first_frame == 0
    assert r.frames_scored == 50  # 2 s at 25 fps, a face in every frame
    assert -15 <= r.offset_frames <= 15 and r.offset_ms == 40 * r.offset_frames
    assert r.lse_d > 0 and r.lse_c >= 0  # the minimum is never above the median
    assert [s for s, _ in r.per_second_confidence] == [0, 1]
    assert _clip_weighted_mean(r) == pytest.approx(r.lse_c, rel=1e-5, abs=1e-5)


def test_json_round_trip_and_plot(report25: SyncReport, tmp_path: Path) -> None:
    data = report25.to_json()
    assert set(data) == JSON_KEYS
    text = json.dumps(data)
    back = SyncReport.from_json(text)
    assert back == report25 and back.to_json() == data
    assert SyncReport.from_json(json.loads(text)) == report25
    with pytest.raises(ValueError, match="offset_ms"):
        SyncReport.from_json({**data, "offset_ms": data["offset_ms"] + 1})

    png = write_plot(report25, tmp_path / "plots" / "sync.png")
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_a_30_fps_clip(tmp_path: Path, demo_net: nn.Module, detector) -> None:
    clip = make_clip(DEMO_VIDEO, tmp_path / "demo_30fps.mp4", seconds=1.2, start=4, fps=30)
    with FrameReader(clip, 360, 640, fps=30) as reader:
        assert sum(1 for _ in reader) == 36
    r = score_video(clip, syncnet=demo_net, detector=detector)
    assert r.frames_scored == 30  # resampled to 25 fps
    assert r.offset_ms == 40 * r.offset_frames and set(r.to_json()) == JSON_KEYS


def test_crops_are_upstreams_and_follow_the_face(clip25: Path, detector) -> None:
    faces = track_and_crop(clip25, detector, workers=1)
    assert faces.crops.shape == (50, 224, 224, 3) and faces.crops.dtype == np.uint8
    assert faces.first_frame == 0 and faces.frames_decoded == 50 and faces.frames_with_face == 50
    # upstream's crop puts the face box (half size s) at rows s..3s of the 2.8 s square
    face = detector.detect(cv2.cvtColor(faces.crops[0], cv2.COLOR_BGR2RGB))
    assert face is not None
    x1, y1, x2, y2 = face.box
    assert abs((x1 + x2) / 2 - 112) < 20 and abs((y1 + y2) / 2 - 80) < 25  # centre x 1.4 s, y 1.0 s


# ---------------------------------------------------------------- errors


def test_no_face(tmp_path: Path, demo_net: nn.Module, detector) -> None:
    noface = tmp_path / "testsrc.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1",
         "-pix_fmt", "yuv420p", "-c:a", "aac", str(noface)]
    )  # fmt: skip
    with pytest.raises(CodedError) as err:
        score_video(noface, syncnet=demo_net, detector=detector)
    assert err.value.code == "NO_FACE"


def test_no_audio(tmp_path: Path, demo_net: nn.Module) -> None:
    silent_video = make_clip(DEMO_VIDEO, tmp_path / "noaudio.mp4", seconds=0.5, audio=False)
    with pytest.raises(CodedError) as err:
        score_video(silent_video, syncnet=demo_net)
    assert err.value.code == "NO_AUDIO_STREAM" and "--audio" in err.value.message
    with pytest.raises(CodedError) as err:  # an "audio" file without audio
        score_video(silent_video, silent_video, syncnet=demo_net)
    assert err.value.code == "NO_AUDIO_STREAM"


def test_too_short(tmp_path: Path, demo_net: nn.Module, detector) -> None:
    tiny = make_clip(DEMO_VIDEO, tmp_path / "tiny.mp4", seconds=0.1, start=3)
    with pytest.raises(CodedError) as err:
        score_video(tiny, syncnet=demo_net, detector=detector)
    assert err.value.code == "TOO_SHORT"
    speech = make_audio(DEMO_AUDIO, tmp_path / "speech.wav", seconds=2, start=1)
    with pytest.raises(CodedError) as err:  # enough audio, too few frames
        score_video(tiny, speech, syncnet=demo_net, detector=detector)
    assert err.value.code == "TOO_SHORT" and "frames" in err.value.message
    with pytest.raises(CodedError) as err:
        score_crops(np.zeros((5, 224, 224, 3), np.uint8), np.zeros(16000, np.int16), demo_net)
    assert err.value.code == "TOO_SHORT"


def test_media_errors_pass_through(tmp_path: Path, demo_net: nn.Module) -> None:
    with pytest.raises(CodedError) as err:
        score_video(tmp_path / "missing.mp4", syncnet=demo_net)
    assert err.value.code == "FILE_NOT_FOUND"
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(CodedError) as err:
        score_video(tmp_path / "junk.mp4", syncnet=demo_net)
    assert err.value.code == "INVALID_MEDIA"


# ---------------------------------------------------------------- weights


def test_load_syncnet_v2(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"auxiliary/syncnet_v2\.model.*latentsync download-weights"):
        load_syncnet_v2(tmp_path, "official")
    assert issubclass(MissingWeightsError, FileNotFoundError)
    with pytest.raises(ValueError, match="weights must be"):
        load_syncnet_v2(tmp_path, "random")
    with pytest.raises(ValueError, match="which weights"):  # a network without a label needs one
        score_crops(np.zeros((8, 224, 224, 3), np.uint8), np.zeros(8 * 640, np.int16), SyncNetV2())

    state = torch.random.get_rng_state()
    demo_a, label = load_syncnet_v2(tmp_path, "demo")
    demo_b, _ = load_syncnet_v2(tmp_path, "demo")
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    assert label == "demo" and demo_a.weights_label == "demo" and not demo_a.training
    assert all(
        torch.equal(a, b) for a, b in zip(demo_a.state_dict().values(), demo_b.state_dict().values(), strict=True)
    )

    (tmp_path / "auxiliary").mkdir()
    torch.save(demo_a.state_dict(), tmp_path / "auxiliary" / "syncnet_v2.model")
    official, label = load_syncnet_v2(tmp_path, "official")
    assert label == "official" and official.weights_label == "official"
    assert all(torch.equal(official.state_dict()[k], v) for k, v in demo_a.state_dict().items())


# ---------------------------------------------------------------- tracking and cropping


def _upstream_crop(image_bgr: np.ndarray, x: float, y: float, s: float, cs: float = 0.4) -> np.ndarray:
    """eval/syncnet_detect.py crop_video, for one frame."""
    bsi = int(s * (1 + 2 * cs))
    frame = np.pad(image_bgr, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    face = frame[int(my - s) : int(my + s * (1 + 2 * cs)), int(mx - s * (1 + cs)) : int(mx + s * (1 + cs))]
    return cv2.resize(face, (224, 224))


@pytest.mark.parametrize("x, y, s", [(120.4, 150.7, 40.3), (8.0, 290.2, 55.5), (235.9, 3.1, 61.0), (60, 70, 200)])
def test_crop_is_upstreams(x: float, y: float, s: float) -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (300, 240, 3), dtype=np.uint8)
    expected = _upstream_crop(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), x, y, s)
    assert np.array_equal(crop_face(rgb, x, y, s), expected)


def test_tracks_follow_upstreams_rules() -> None:
    a = (100.0, 100.0, 180.0, 180.0)
    a2 = (106.0, 104.0, 186.0, 184.0)  # the same face a little further (IoU 0.79)
    b = (10.0, 10.0, 60.0, 60.0)  # somebody else
    boxes = [None] * 3 + [a] * 10 + [None] * 5 + [a2] * 10 + [b] * 3 + [None] * 30 + [a] * 4
    boxes[8] = b  # the largest face switches for one frame: the track skips it (and b's track takes it)
    tracks = build_tracks(boxes)
    assert [(t.first, t.last, t.detections) for t in tracks] == [(3, 27, 19), (8, 30, 4), (61, 64, 4)]
    main = longest_track(tracks)
    assert main is tracks[0] and main.length == 25
    assert np.allclose(main.boxes[8 - 3], a)  # the skipped frame takes its neighbours' box
    gap = main.boxes[12 - 3 : 18 - 3 + 1]  # last a at frame 12, first a2 at 18: linear in between
    assert np.allclose(gap[:, 0], np.linspace(100, 106, 7))
    assert longest_track([]) is None
    tie = [Track(5, np.zeros((6, 4)), 4), Track(0, np.zeros((6, 4)), 6), Track(20, np.zeros((6, 4)), 6)]
    assert longest_track(tie) is tie[1]


def test_smoothing_is_a_running_median() -> None:
    assert running_median(np.array([5.0, 1, 9, 2]), 3).tolist() == [3, 5, 2, 5.5]  # ends: the values that exist
    values = np.random.default_rng(1).normal(size=40)
    zero_padded = np.lib.stride_tricks.sliding_window_view(np.pad(values, 6), 13)  # scipy's medfilt
    assert np.allclose(running_median(values)[6:-6], np.median(zero_padded, axis=1)[6:-6])
    track = Track(0, np.array([[10.0, 20, 50, 80]] * 7), 7)  # 7 frames: medfilt would give size 0 at the ends
    assert smooth_track(track).tolist() == [[30.0, 50.0, 30.0]] * 7


# ---------------------------------------------------------------- a known shift, end to end


PATCH = (slice(190, 202), slice(102, 122))  # inside the painted patch in any crop of the test face
FACELESS, FACE_FRAMES = 10, 60  # the video: 10 black frames, then 60 of a still face


@pytest.fixture(scope="module")
def painted(tmp_path_factory: pytest.TempPathFactory, pcm: np.ndarray, detector) -> dict:
    """A lossless video whose frame t shows the patch painted with the energy of audio frame t."""
    folder = tmp_path_factory.mktemp("painted")
    frames = FACELESS + FACE_FRAMES
    speech = pcm[16000 : 16000 + 640 * frames]  # after the leading silence
    energy = mfcc(pcm[16000 : 16000 + 640 * (frames + 1)], 16000)[0, : 4 * frames].reshape(frames, 4).mean(1)
    net = EnvelopeNet(float(energy.min()), float(energy.max()), patch=PATCH).double()
    levels = net.quantise(torch.from_numpy(energy)).to(torch.uint8).numpy()

    with FrameReader(DEMO_VIDEO, 360, 640) as reader:
        still = np.ascontiguousarray(reader.read()[130:430, 80:320])  # (300, 240): the face and below
    x1, y1, x2, y2 = detector.detect(still).box
    cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
    rows = slice(int(cy + 1.25 * s), int(cy + 1.65 * s))  # crop rows 180..212 of 224
    cols = slice(int(cx - 0.3 * s), int(cx + 0.3 * s))  # crop columns 88..136

    wav = _write_wav(folder / "speech.wav", speech)
    video = folder / "painted.mkv"
    writer = VideoWriter(video, 240, 300, audio_path=wav)  # FFV1 + FLAC: the exact pixels and samples
    for t in range(frames):
        frame = np.zeros_like(still) if t < FACELESS else still.copy()
        if t >= FACELESS:
            frame[rows, cols] = levels[t]
        writer.write(frame)
    writer.close()
    return {"video": video, "speech": speech, "net": net, "folder": folder}


@pytest.fixture(scope="module")
def painted_faces(painted: dict, detector) -> FaceCrops:
    return track_and_crop(painted["video"], detector, workers=1)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def test_the_video_own_audio_is_in_sync(painted: dict, detector) -> None:
    r = score_video(painted["video"], syncnet=painted["net"], detector=detector, weights="demo")
    # the face appears at frame 10: the audio under it starts there too (not at 0, or the
    # offset would be 10 frames)
    assert r.first_frame == FACELESS and r.frames_scored == FACE_FRAMES
    assert r.offset_frames == 0 and r.lse_d < 1e-3 and r.lse_c > 3
    assert [s for s, _ in r.per_second_confidence] == [0, 1, 2]  # clips start at frames 10..64
    assert _clip_weighted_mean(r) == pytest.approx(r.lse_c, rel=1e-6)


@pytest.mark.parametrize("lag", [3, -4])
def test_a_known_audio_shift_moves_the_offset(painted: dict, painted_faces: FaceCrops, detector, lag: int) -> None:
    # lag > 0: the speech starts `lag` frames late (silence first); lag < 0: it starts early.
    speech = painted["speech"]
    shifted = np.concatenate([np.zeros(640 * lag, np.int16), speech]) if lag > 0 else speech[640 * -lag :]
    shifted = np.concatenate([shifted, np.zeros(640 * 10, np.int16)])[: len(speech)]
    wav = _write_wav(painted["folder"] / f"shifted_{lag}.wav", shifted)
    r = score_video(painted["video"], wav, syncnet=painted["net"], detector=detector, weights="demo")
    # the offset search's convention: audio lagging by d frames gives offset -d
    assert r.offset_frames == -lag and r.offset_ms == -40 * lag
    assert r.lse_c > 3

    # the same through score_crops, as the service calls it with the pipeline's crops
    faces = painted_faces
    again = score_crops(faces.crops, shifted[640 * faces.first_frame :], painted["net"], "demo",
                        first_frame=faces.first_frame)  # fmt: skip
    assert again == r and again.first_frame == r.first_frame
