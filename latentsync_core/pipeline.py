"""The lip-sync pipeline: video + speech in, lip-synced MP4 out, in bounded memory.

Stages (each reported to the progress callback as ``(stage, done, total)``):

1. ``probe``   - check both inputs before any heavy work;
2. ``audio``   - Whisper features; the output has one frame per audio window (25 fps);
3. ``detect``  - one streaming pass over the source at 25 fps: face landmarks and the
                 smoothed alignment matrices (frames go to a disk store only when the
                 video must loop);
4. ``denoise`` - per 16-frame window: align faces, encode masked and reference latents,
                 DDIM with classifier-free guidance (zeroed audio is the unconditional
                 branch), decode, paste the upper face back, warp into the frame, and hand
                 the frame to the encoder, which runs concurrently in ffmpeg;
5. ``encode``  - finish the H.264 + AAC file.

Frames without a usable face pass through unchanged and are listed in the result; a video
without any face fails with ``NO_FACE``. Host memory holds one window of frames at a time.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from latentsync_core import vae as vae_ops
from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.frame_store import FrameStore
from latentsync_core.loading import ModelBundle
from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.ffmpeg_bin import MediaError
from latentsync_core.media.probe import MediaInfo, probe_audio, probe_video
from latentsync_core.media.video_io import FPS, FrameReader, VideoWriter
from latentsync_core.models import DeepCacheState
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.weights.demo import DEMO_NOTICE

log = logging.getLogger(__name__)

WINDOW = 16  # frames per UNet call, as the model was trained
MASK_PATH = Path(__file__).resolve().parent / "vision" / "assets" / "mask.png"
DEEPCACHE_INTERVAL = 3

ProgressFn = Callable[[str, int, int], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """The caller asked to stop; partial outputs were removed."""


class PipelineError(Exception):
    """A job-level failure with a stable code (for example NO_FACE)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LipSyncParams:
    inference_steps: int = 20
    guidance_scale: float = 1.5
    seed: int = 1247
    enable_deepcache: bool = False

    def validate(self) -> None:
        if not 1 <= self.inference_steps <= 200:
            raise ValueError("inference_steps must be between 1 and 200")
        if not 0.0 <= self.guidance_scale <= 20.0:
            raise ValueError("guidance_scale must be between 0 and 20")
        if not 0 <= self.seed < 2**63:
            raise ValueError("seed must be a non-negative 64-bit integer")


@dataclass
class LipSyncResult:
    output_path: Path
    frames: int
    duration: float
    width: int
    height: int
    fps: int
    frames_without_face: list[int]
    source_frames: int
    looped: bool
    weights_kind: str
    timings: dict[str, float] = field(default_factory=dict)
    notice: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["output_path"] = str(self.output_path)
        return d


@dataclass
class _SourcePlan:
    info: MediaInfo
    matrices: np.ndarray  # (F, 2, 3) float32, a valid crop for every frame
    has_face: np.ndarray  # (F,) bool
    store: FrameStore | None


def load_mask(resolution: int) -> torch.Tensor:
    """(3, r, r) float mask: 1 keeps the upper face, 0 is the mouth region to generate."""
    img = cv2.imread(str(MASK_PATH))
    if img is None:
        raise RuntimeError(f"mask image missing: {MASK_PATH}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).float()


def ping_pong_index(j: int, n_source: int) -> int:
    """Source frame for output frame ``j``: forward, then backward, then forward, ..."""
    cycle, k = divmod(j, n_source)
    return k if cycle % 2 == 0 else n_source - 1 - k


class LipSyncPipeline:
    def __init__(self, models: ModelBundle):
        self.m = models
        self.mask = load_mask(models.resolution)

    # ---- public -----------------------------------------------------------------------
    def warmup(self) -> None:
        """One UNet call and one VAE round trip at full window size, so the first job does not
        pay for kernel selection and allocator growth."""
        m = self.m
        r = m.resolution // 8
        cond_frames = WINDOW * 2
        with torch.no_grad():
            x = torch.zeros((2, m.unet.config.in_channels, WINDOW, r, r), device=m.device, dtype=m.dtype)
            ctx = torch.zeros((cond_frames, 50, m.unet.config.cross_attention_dim), device=m.device, dtype=m.dtype)
            m.unet(x, 999, encoder_hidden_states=ctx)
            lat = vae_ops.encode(m.vae, torch.zeros((1, 3, m.resolution, m.resolution), device=m.device), None)
            vae_ops.decode(m.vae, lat)
        if m.device.type == "cuda":
            torch.cuda.synchronize(m.device)

    def run(
        self,
        video_path: str | Path,
        audio_path: str | Path,
        output_path: str | Path,
        params: LipSyncParams | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        work_dir: str | Path | None = None,
    ) -> LipSyncResult:
        params = params or LipSyncParams()
        params.validate()
        report = progress or (lambda stage, done, total: None)
        cancelled = should_cancel or (lambda: False)
        output_path = Path(output_path)
        own_work = work_dir is None
        work = Path(tempfile.mkdtemp(prefix="latentsync-")) if own_work else Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        plan: _SourcePlan | None = None
        partial = work / "output.partial.mp4"
        try:
            t0 = time.perf_counter()
            report("probe", 0, 1)
            video_info = probe_video(video_path)
            probe_audio(audio_path)
            report("probe", 1, 1)
            timings["probe"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            report("audio", 0, 1)
            samples = load_audio(audio_path)
            if samples.size < 160:  # under 10 ms: nothing to lip-sync to
                raise MediaError("EMPTY_AUDIO", "the audio track is empty")
            features = self.m.whisper.features_from_samples(samples)
            n_out = WhisperFeatureExtractor.num_chunks(len(features), FPS)
            audio_duration = samples.size / 16000
            report("audio", 1, 1)
            timings["audio"] = time.perf_counter() - t0
            self._check(cancelled)

            t0 = time.perf_counter()
            plan = self._plan_source(video_path, video_info, n_out, work, report, cancelled)
            timings["detect"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            writer = VideoWriter(
                partial,
                video_info.width,
                video_info.height,
                audio_path,
                duration=audio_duration,
                metadata_comment=DEMO_NOTICE if self.m.is_demo else None,
            )
            try:
                self._generate(plan, features, n_out, params, writer, report, cancelled, video_path)
            except BaseException:
                writer.abort()
                raise
            timings["denoise"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            report("encode", 0, 1)
            writer.close()
            output_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(partial), output_path)
            report("encode", 1, 1)
            timings["encode"] = time.perf_counter() - t0
            n_src = len(plan.has_face)
            # Every decoded source frame is shown (decoding stops at the output's length).
            missing = np.flatnonzero(~plan.has_face).tolist()
            if self.m.is_demo:
                log.warning("%s: %s", output_path.name, DEMO_NOTICE)
            return LipSyncResult(
                output_path=output_path,
                frames=n_out,
                duration=audio_duration,
                width=video_info.width,
                height=video_info.height,
                fps=FPS,
                frames_without_face=missing,
                source_frames=n_src,
                looped=n_out > n_src,
                weights_kind=self.m.weights_kind,
                timings=timings,
                notice=DEMO_NOTICE if self.m.is_demo else None,
            )
        finally:
            if plan is not None and plan.store is not None:
                plan.store.close()
            partial.unlink(missing_ok=True)
            if own_work:
                shutil.rmtree(work, ignore_errors=True)

    # ---- stages -------------------------------------------------------------------------
    @staticmethod
    def _check(cancelled: CancelFn) -> None:
        if cancelled():
            raise Cancelled("cancelled")

    def _plan_source(
        self,
        video_path: str | Path,
        info: MediaInfo,
        n_out: int,
        work: Path,
        report: ProgressFn,
        cancelled: CancelFn,
    ) -> _SourcePlan:
        """Detect faces in every source frame, in order, and compute the smoothed matrices."""
        estimate = max(1, round(info.duration * FPS))
        keep_frames = n_out > estimate - 2 * FPS  # the loop needs random access to frames
        store = FrameStore(work / "frames.raw", info.height, info.width) if keep_frames else None
        aligner = FaceAligner(self.m.resolution)
        matrices: list[np.ndarray | None] = []
        try:
            with FrameReader(video_path, info.width, info.height) as reader:
                for frame in reader:
                    # Frames past the output's length are never shown: no need to look at them.
                    if len(matrices) >= n_out:
                        break
                    if store is not None:
                        store.append(frame)
                    face = self.m.detector.detect(frame)
                    matrices.append(aligner.matrix(face.points) if face is not None else None)
                    if len(matrices) % 8 == 0:
                        report("detect", len(matrices), min(estimate, n_out))
                        self._check(cancelled)
                errors = reader.errors
            if not matrices:
                raise MediaError(
                    "INVALID_VIDEO", f"no decodable video frames ({errors.strip()[:200] or 'empty stream'})"
                )
            if all(m is None for m in matrices):
                raise PipelineError("NO_FACE", "no face was found in any frame of the video")
            if n_out > len(matrices) and store is None:  # the probe under-estimated: decode again into a store
                store = FrameStore(work / "frames.raw", info.height, info.width)
                with FrameReader(video_path, info.width, info.height) as reader:
                    for frame, _ in zip(reader, range(len(matrices)), strict=False):
                        store.append(frame)
        except BaseException:
            if store is not None:
                store.close()
            raise
        count = len(matrices)
        has_face = np.array([m is not None for m in matrices])
        filled = _fill_missing(matrices)
        report("detect", count, count)
        return _SourcePlan(info=info, matrices=filled, has_face=has_face, store=store)

    def _generate(
        self,
        plan: _SourcePlan,
        features: torch.Tensor,
        n_out: int,
        params: LipSyncParams,
        writer: VideoWriter,
        report: ProgressFn,
        cancelled: CancelFn,
        video_path: str | Path,
    ) -> None:
        m = self.m
        device, dtype = m.device, m.dtype
        n_src = len(plan.has_face)
        aligner = FaceAligner(m.resolution, device=device)
        scheduler = DDIMScheduler(**_scheduler_kwargs(m.scheduler))
        scheduler.set_timesteps(params.inference_steps, device=device)
        generator = torch.Generator(device=device).manual_seed(params.seed)
        latent_size = m.resolution // 8
        # One noise image shared by every frame (as upstream): it keeps the mouth texture
        # consistent over time.
        noise = torch.randn((1, 4, 1, latent_size, latent_size), generator=generator, device=device, dtype=dtype)
        noise = noise * scheduler.init_noise_sigma
        cfg = params.guidance_scale > 1.0
        mask = self.mask.to(device)
        mask_latent = F.interpolate(mask[None, 0:1], size=(latent_size, latent_size)).to(dtype)
        sequential = None if plan.store is not None else FrameReader(video_path, plan.info.width, plan.info.height)
        try:
            for start in range(0, n_out, WINDOW):
                count = min(WINDOW, n_out - start)
                src_idx = [ping_pong_index(j, n_src) for j in range(start, start + count)]
                frames = np.stack([self._frame(plan, sequential, i) for i in src_idx])
                mats = torch.from_numpy(plan.matrices[src_idx])
                faces = self._aligned_faces(aligner, frames, mats)  # (f, 3, r, r) in [-1, 1]
                with torch.no_grad():
                    pixel = faces.to(device)
                    masked = pixel * mask
                    masked_lat = vae_ops.encode(m.vae, masked.to(dtype), generator)
                    ref_lat = vae_ops.encode(m.vae, pixel.to(dtype), generator)
                    cond = torch.cat(
                        [_to_5d(mask_latent.expand(count, -1, -1, -1)), _to_5d(masked_lat), _to_5d(ref_lat)], dim=1
                    )
                    audio = WhisperFeatureExtractor.chunks(features, FPS, start=start, count=count).to(device, dtype)
                    if cfg:
                        cond = torch.cat([cond, cond])
                        audio = torch.cat([torch.zeros_like(audio), audio])
                    latents = noise.expand(-1, -1, count, -1, -1).clone()
                    cache = DeepCacheState(DEEPCACHE_INTERVAL) if params.enable_deepcache else None
                    for k, t in enumerate(scheduler.timesteps):
                        self._check(cancelled)
                        inp = torch.cat([latents, latents]) if cfg else latents
                        inp = torch.cat([scheduler.scale_model_input(inp, t), cond], dim=1)
                        pred = m.unet(inp, t, encoder_hidden_states=audio, deep_cache=cache).sample
                        if cache is not None:
                            cache.advance()
                        if cfg:
                            uncond, cond_pred = pred.chunk(2)
                            pred = uncond + params.guidance_scale * (cond_pred - uncond)
                        latents = scheduler.step(pred, t, latents, eta=0.0, generator=generator).prev_sample
                        report("denoise", start + count * (k + 1) // params.inference_steps, n_out)
                    decoded = vae_ops.decode(m.vae, latents[0].permute(1, 0, 2, 3)).float()
                    # Generated mouth region, original upper face.
                    combined = decoded * (1 - mask) + pixel * mask
                    out = aligner_restore(aligner, frames, combined, mats, plan.has_face[src_idx], device)
                for frame in out:
                    writer.write(frame)
        finally:
            if sequential is not None:
                sequential.close()

    @staticmethod
    def _frame(plan: _SourcePlan, reader: FrameReader | None, index: int) -> np.ndarray:
        if plan.store is not None:
            return plan.store.get(index)
        assert reader is not None
        frame = reader.read()  # without a store output frames follow the source in order
        if frame is None:
            raise MediaError("INVALID_VIDEO", "the video ended early on the second read")
        return frame

    def _aligned_faces(self, aligner: FaceAligner, frames: np.ndarray, mats: torch.Tensor) -> torch.Tensor:
        crops = aligner.warp_faces(torch.from_numpy(frames), mats).cpu().numpy()
        r = self.m.resolution
        resized = np.stack([cv2.resize(c, (r, r), interpolation=cv2.INTER_LANCZOS4) for c in crops])
        return torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def aligner_restore(
    aligner: FaceAligner,
    frames: np.ndarray,
    faces: torch.Tensor,
    mats: torch.Tensor,
    has_face: np.ndarray,
    device: torch.device,
) -> np.ndarray:
    """Paste generated faces into the frames that had one; others pass through unchanged."""
    out = frames.copy()
    chunk = len(frames) if device.type == "cuda" else 1  # bounded host memory on the CPU
    idx = np.flatnonzero(has_face)
    for s in range(0, len(idx), chunk):
        sel = idx[s : s + chunk]
        restored = aligner.restore_batch(torch.from_numpy(frames[sel]), faces[sel], mats[sel])
        out[sel] = restored.cpu().numpy()
    return out


def _to_5d(frames: torch.Tensor) -> torch.Tensor:
    """(f, c, h, w) -> (1, c, f, h, w)."""
    return frames.permute(1, 0, 2, 3).unsqueeze(0)


def _fill_missing(matrices: list[np.ndarray | None]) -> np.ndarray:
    """Give frames without a face the nearest detected frame's crop (for the UNet's input
    only: those frames are not pasted back)."""
    valid = [i for i, m in enumerate(matrices) if m is not None]
    out = np.empty((len(matrices), 2, 3), dtype=np.float32)
    for i, m in enumerate(matrices):
        if m is None:
            nearest = min(valid, key=lambda v: abs(v - i))
            m = matrices[nearest]
        out[i] = m
    return out


def _scheduler_kwargs(cfg) -> dict:
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "beta_schedule": cfg.beta_schedule,
        "clip_sample": cfg.clip_sample,
        "set_alpha_to_one": cfg.set_alpha_to_one,
        "steps_offset": cfg.steps_offset,
    }
