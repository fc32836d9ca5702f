"""Sync score of a whole video file or of face crops: offset, LSE-C, LSE-D and confidence
per second, with SyncNetV2 as upstream's evaluation (``eval/eval_sync_conf.py``).

Per-second confidence. :func:`score_frames` gives, for every 5-frame clip, its embedding
distance at the chosen offset (``frame_dist``) and, for every candidate shift, the mean
distance over all clips. A second's confidence is the median of those mean distances (the
same median LSE-C takes) minus the mean ``frame_dist`` of the clips that start in that
second (25 frames; a clip starting at frame ``f`` counts for second ``f // 25`` of the
video). So a second where lips and speech agree as well as on average scores LSE-C, a
worse one less (negative: worse than a typical wrong shift), and the mean of the values
weighted by the clips in each second is exactly LSE-C. The distances are taken at the
whole video's offset on purpose: a per-second minimum over shifts would pick each second's
own best shift, and the minimum of 31 noisy averages of 25 clips stands out from their
median even where nothing is in sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.media.probe import probe_audio, probe_video
from latentsync_core.models.syncnet_v2 import SyncNetV2, load_syncnet_v2_checkpoint
from latentsync_core.sync.score import MIN_FRAMES, SyncScore, score_frames
from latentsync_core.sync.track import track_and_crop
from latentsync_core.vision.face_detection import FaceDetector, make_face_detector
from latentsync_core.weights.official import DOWNLOAD_HINT, MissingWeightsError

MS_PER_FRAME = 1000 // FPS  # 40
SYNCNET_V2_FILE = Path("auxiliary") / "syncnet_v2.model"
DEMO_SEED = 20240611  # random SyncNetV2 of the demo mode: the same weights in every process
WEIGHT_LABELS = ("official", "demo")


@dataclass
class SyncReport:
    """The sync score of one video; ``to_json`` is what the CLI writes and a job record holds."""

    offset_frames: int  # audio offset at 25 fps; negative: the audio lags the video
    lse_c: float  # confidence: median minus minimum of the mean distances over the shifts (higher is better)
    lse_d: float  # mean embedding distance at the offset (lower is better)
    frames_scored: int  # frames of video with audio under them that were scored
    weights: str  # "official" (released syncnet_v2.model) or "demo" (random weights: numbers are meaningless)
    per_second_confidence: list[tuple[int, float]]  # (second of the video, confidence): module docstring
    first_frame: int = field(default=0, compare=False)  # where the scored frames start in the 25 fps video
    offset_ms: int = field(init=False)

    def __post_init__(self) -> None:
        self.offset_ms = self.offset_frames * MS_PER_FRAME

    def to_json(self) -> dict[str, Any]:
        return {
            "offset_frames": self.offset_frames,
            "offset_ms": self.offset_ms,
            "lse_c": self.lse_c,
            "lse_d": self.lse_d,
            "weights": self.weights,
            "frames_scored": self.frames_scored,
            "per_second_confidence": [[s, c] for s, c in self.per_second_confidence],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> SyncReport:
        """The report of a :meth:`to_json` dict (or its JSON text)."""
        d = json.loads(data) if isinstance(data, str) else data
        report = cls(
            offset_frames=int(d["offset_frames"]),
            lse_c=float(d["lse_c"]),
            lse_d=float(d["lse_d"]),
            frames_scored=int(d["frames_scored"]),
            weights=str(d["weights"]),
            per_second_confidence=[(int(s), float(c)) for s, c in d["per_second_confidence"]],
        )
        if "offset_ms" in d and int(d["offset_ms"]) != report.offset_ms:
            raise ValueError(f"offset_ms {d['offset_ms']} != 40 x offset_frames {report.offset_frames}")
        return report


def per_second_confidence(score: SyncScore, first_frame: int = 0) -> list[tuple[int, float]]:
    """(second, confidence) for every second with a clip starting in it (module docstring)."""
    median = float(np.median(score.mean_dists))
    seconds = (first_frame + np.arange(score.num_clips)) // FPS
    return [(int(s), median - float(score.frame_dist[seconds == s].mean())) for s in np.unique(seconds)]


def _weights_label(syncnet: torch.nn.Module, weights: str | None) -> str:
    label = weights or getattr(syncnet, "weights_label", None)
    if not label:
        raise ValueError("say which weights the SyncNet has (weights='official' or 'demo')")
    return str(label)


def score_crops(
    crops_bgr_224: np.ndarray | torch.Tensor,
    pcm_int16: np.ndarray,
    syncnet: torch.nn.Module,
    weights: str | None = None,
    *,
    first_frame: int = 0,
    vshift: int = 15,
    batch_size: int = 20,
) -> SyncReport:
    """Score 25 fps face crops (N, 224, 224, 3) uint8 BGR (other sizes are resized) against
    16 kHz mono int16 speech starting with the first crop.

    ``weights`` labels the report ("official"/"demo"; default: the label
    :func:`load_syncnet_v2` put on the network). ``first_frame`` is the first crop's frame
    in the video, so that the per-second values are numbered by the video's seconds.
    Raises :class:`CodedError` ``TOO_SHORT`` when video and audio overlap by under 6 frames.
    """
    label = _weights_label(syncnet, weights)
    pcm = np.asarray(pcm_int16).reshape(-1)
    if pcm.dtype != np.int16:
        raise ValueError(f"pcm must be int16 samples, got {pcm.dtype}")
    frames = len(crops_bgr_224)
    length = min(frames, len(pcm) // SAMPLES_PER_FRAME)
    if length < MIN_FRAMES:
        raise CodedError(
            "TOO_SHORT",
            f"{frames} face frames and {len(pcm) / SAMPLE_RATE:.2f} s of audio overlap by {length} frames "
            f"at {FPS} fps; sync scoring needs at least {MIN_FRAMES}",
        )
    score = score_frames(syncnet, crops_bgr_224[:length], pcm[: length * SAMPLES_PER_FRAME], vshift, batch_size)
    return SyncReport(
        offset_frames=score.offset,
        lse_c=score.lse_c,
        lse_d=score.lse_d,
        frames_scored=length,
        weights=label,
        per_second_confidence=per_second_confidence(score, first_frame),
        first_frame=first_frame,
    )


def score_video(
    video_path: str | Path,
    audio_path: str | Path | None = None,
    syncnet: torch.nn.Module | None = None,
    detector: FaceDetector | None = None,
    device: str | torch.device | None = None,
    *,
    weights: str | None = None,
    detect_workers: int | None = None,
    vshift: int = 15,
    batch_size: int = 20,
) -> SyncReport:
    """Sync score of a video file's main face against its own audio track, or against
    ``audio_path`` (speech that starts with the video) when given.

    Frames are resampled to 25 fps and audio to 16 kHz mono. The face is tracked and cropped
    as :mod:`latentsync_core.sync.track` describes (only the longest face track is scored,
    with the audio under it). ``syncnet`` is a :class:`SyncNetV2` (see
    :func:`load_syncnet_v2`); ``device``, when given, moves it there. ``detector`` defaults
    to the embedded dlib detector.

    Raises :class:`CodedError`: ``NO_AUDIO_STREAM`` (no audio in the video and none given, or
    none in ``audio_path``), ``NO_FACE``, ``TOO_SHORT`` (under 6 frames scored), and the media
    codes of probing and decoding (``FILE_NOT_FOUND``, ``INVALID_MEDIA``, ``NO_VIDEO_STREAM``...).
    """
    if syncnet is None:
        raise ValueError("score_video needs a SyncNetV2 (see load_syncnet_v2)")
    label = _weights_label(syncnet, weights)
    if device is not None:
        syncnet.to(device)
    info = probe_video(video_path)
    if audio_path is None:
        if not info.has_audio:
            raise CodedError(
                "NO_AUDIO_STREAM",
                f"{Path(video_path).name} has no audio stream; give the speech as a separate file (--audio)",
            )
        audio_source: str | Path = video_path
    else:
        probe_audio(audio_path)
        audio_source = audio_path
    pcm = to_int16(load_audio(audio_source, SAMPLE_RATE))
    if len(pcm) < MIN_FRAMES * SAMPLES_PER_FRAME:  # fail before the detection pass
        raise CodedError(
            "TOO_SHORT",
            f"the audio lasts {len(pcm) / SAMPLE_RATE:.2f} s; sync scoring needs at least "
            f"{MIN_FRAMES} frames ({MIN_FRAMES / FPS:.2f} s)",
        )
    if detector is None:
        detector = make_face_detector(None, str(device or "cpu"))
    faces = track_and_crop(video_path, detector, info, detect_workers)
    start = faces.first_frame * SAMPLES_PER_FRAME
    return score_crops(
        faces.crops,
        pcm[start : start + len(faces.crops) * SAMPLES_PER_FRAME],
        syncnet,
        label,
        first_frame=faces.first_frame,
        vshift=vshift,
        batch_size=batch_size,
    )


def demo_syncnet_v2(seed: int = DEMO_SEED) -> SyncNetV2:
    """A SyncNetV2 with PyTorch's default initialisation drawn from ``seed``; the global
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SyncNetV2()


def load_syncnet_v2(
    checkpoint_dir: str | Path, weights: str = "official", device: str | torch.device = "cpu"
) -> tuple[SyncNetV2, str]:
    """(SyncNetV2 in eval mode on ``device``, its label for the report).

    ``"official"``: ``checkpoint_dir/auxiliary/syncnet_v2.model`` loaded strictly; a missing
    file raises :class:`MissingWeightsError` (a ``FileNotFoundError``) that names it and says
    that ``latentsync download-weights`` fetches it. ``"demo"``: random weights from a fixed
    seed (the scores then say nothing about lip sync). The network also carries the label
    as ``weights_label``, which :func:`score_video` and :func:`score_crops` use by default.
    """
    if weights == "official":
        path = Path(checkpoint_dir) / SYNCNET_V2_FILE
        if not path.is_file():
            raise MissingWeightsError(f"SyncNetV2 weights not found: {path}; {DOWNLOAD_HINT}")
        net = load_syncnet_v2_checkpoint(path, device)
    elif weights == "demo":
        net = demo_syncnet_v2().to(device).eval()
    else:
        raise ValueError(f"weights must be one of {WEIGHT_LABELS}, got {weights!r}")
    net.weights_label = weights
    return net, weights
