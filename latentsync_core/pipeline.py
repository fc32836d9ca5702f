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
without any face fails with ``NO_FACE``. Host memory holds a few windows of frames at a time.

To keep the GPU busy, decoding and alignment run one window ahead on a thread and the
encoder is fed from another; detection uses several threads. With a template cache, a
video seen before skips detection and the VAE encodes (``template_cache.py``).
"""

from __future__ import annotations

import contextlib
import itertools
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

from latentsync_core.accel import AccelOptions, UNetRunner, VAERunner, sample_latents
from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.background import Drain, Prefetch
from latentsync_core.errors import Cancelled, CodedError, MediaError
from latentsync_core.frame_store import FrameStore
from latentsync_core.loading import ModelBundle
from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.probe import MediaInfo, probe_audio, probe_video
from latentsync_core.media.video_io import FPS, FrameReader, VideoWriter
from latentsync_core.models import DeepCacheState
from latentsync_core.template_cache import Template, TemplateCache, file_sha256, from_numpy, numpy_dtype, to_numpy
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import default_detect_workers, detect_in_order
from latentsync_core.weights.demo import DEMO_NOTICE

log = logging.getLogger(__name__)

WINDOW = 16  # frames per UNet call, as the model was trained
MASK_PATH = Path(__file__).resolve().parent / "vision" / "assets" / "mask.png"
DEEPCACHE_INTERVAL = 3

ProgressFn = Callable[[str, int, int], None]
CancelFn = Callable[[], bool]


PipelineError = CodedError  # job-level failures (NO_FACE) share the one coded error type


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
    template_cache: dict | None = None  # {"key", "used", "stored"}; None when the cache is off
    fast_path: bool = False  # compiled UNet/VAE were used for full windows

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
    raw_matrices: np.ndarray | None = None  # NaN where no face: what a template keeps
    complete: bool = False  # F is every frame of the video
    template: Template | None = None  # the cached template this plan came from
    cache_key: str | None = None
    cache_state: str | None = None  # "hit" or "miss"
    staging: Path | None = None  # template being built (published after a successful job)
    moments_array: np.ndarray | None = None  # (F, 2, 8, h, w) encoder moments
    moments_known: np.ndarray | None = None  # (F,) bool
    work: Path | None = None
    scratch: Path | None = None  # moments file in the work folder (no template cache)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.moments_array = None
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)
        if self.staging is not None:  # the job failed before publishing: drop the partial template
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


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
    """``run`` turns a video and a speech track into a lip-synced MP4.

    ``accel`` picks the execution of the UNet and VAE (eager reference, channels-last,
    compiled); ``template_cache`` keeps the audio-independent work on each video;
    ``detect_workers`` threads run the face detector during the first pass.
    """

    def __init__(
        self,
        models: ModelBundle,
        accel: AccelOptions | None = None,
        template_cache: TemplateCache | None = None,
        detect_workers: int | None = None,
    ):
        self.m = models
        self.mask = load_mask(models.resolution)
        self.accel = accel or AccelOptions()
        self.unet = UNetRunner(models.unet, self.accel)
        self.vae = VAERunner(models.vae, self.accel)
        self.template_cache = template_cache
        self.detect_workers = detect_workers if detect_workers is not None else default_detect_workers()
        self.fast_path_ready = not self.accel.compile

    # ---- public -----------------------------------------------------------------------
    def _window_shapes(self, batch: int = 2) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        r = self.m.resolution
        unet = (batch, self.m.unet.config.in_channels, WINDOW, r // 8, r // 8)
        ctx = (batch * WINDOW, 50, self.m.unet.config.cross_attention_dim)
        return unet, ctx, (WINDOW, 3, r, r)

    def warmup(self) -> None:
        """One eager UNet call (full and DeepCache step) and one VAE round trip at full window
        size, so the first job does not pay for kernel selection and allocator growth."""
        unet_shape, ctx_shape, image_shape = self._window_shapes()
        self.unet.run_once(unet_shape, ctx_shape)
        self.vae.run_once(image_shape)

    def prepare_fast_path(self) -> float:
        """Compile the full-window shapes (guidance on: batch 2). Safe to call on a thread
        while jobs run: they use the eager modules until this returns. Seconds taken."""
        if not self.accel.compile:
            return 0.0
        unet_shape, ctx_shape, image_shape = self._window_shapes()
        seconds = self.unet.prepare(unet_shape, ctx_shape) + self.vae.prepare(image_shape)
        self.fast_path_ready = True
        log.info("compiled UNet and VAE for full windows in %.1f s", seconds)
        return seconds

    def fingerprint(self) -> str:
        """What cached templates depend on besides the video's bytes."""
        m = self.m
        return f"{m.resolution}|{m.detector.name}|{m.dtype}|{m.device.type}|{m.vae_id}|{self.accel.channels_last}"

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
        partial = work / f"output.partial{output_path.suffix or '.mp4'}"  # the suffix picks the codec
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
            report("audio", 1, 1)
            timings["audio"] = time.perf_counter() - t0
            self._check(cancelled)

            t0 = time.perf_counter()
            plan = self._plan(video_path, video_info, n_out, work, report, cancelled)
            timings["detect"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            writer = VideoWriter(
                partial,
                video_info.width,
                video_info.height,
                audio_path,
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
            cache_state = self._publish_template(plan)
            n_src = len(plan.has_face)
            # Every decoded source frame is shown (decoding stops at the output's length).
            missing = np.flatnonzero(~plan.has_face).tolist()
            if self.m.is_demo:
                log.warning("%s: %s", output_path.name, DEMO_NOTICE)
            return LipSyncResult(
                output_path=output_path,
                frames=n_out,
                duration=n_out / FPS,
                width=video_info.width,
                height=video_info.height,
                fps=FPS,
                frames_without_face=missing,
                source_frames=n_src,
                looped=n_out > n_src,
                weights_kind=self.m.weights_kind,
                timings=timings,
                notice=DEMO_NOTICE if self.m.is_demo else None,
                template_cache=cache_state,
                fast_path=self.fast_path_ready and self.accel.compile,
            )
        finally:
            if plan is not None:
                plan.close()
            partial.unlink(missing_ok=True)
            if own_work:
                shutil.rmtree(work, ignore_errors=True)

    # ---- stages -------------------------------------------------------------------------
    @staticmethod
    def _check(cancelled: CancelFn) -> None:
        if cancelled():
            raise Cancelled("cancelled")

    def _plan(
        self,
        video_path: str | Path,
        info: MediaInfo,
        n_out: int,
        work: Path,
        report: ProgressFn,
        cancelled: CancelFn,
    ) -> _SourcePlan:
        """From the template cache when it has this video, else by detection."""
        key, template = None, None
        if self.template_cache is not None:
            key = TemplateCache.key(file_sha256(video_path), self.fingerprint())
            template = self.template_cache.get(key, self.m.dtype)
        if template is not None and template.covers(n_out):
            plan = self._source_from_template(template, video_path, info, n_out, work, report)
        else:
            plan = self._detect_source(video_path, info, n_out, work, report, cancelled)
        plan.work = work
        if key is not None:
            plan.cache_key, plan.cache_state = key, "hit" if plan.template is not None else "miss"
        return plan

    def _detect_source(
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
        complete = False
        try:
            with FrameReader(video_path, info.width, info.height) as reader:
                frames = itertools.islice(reader, n_out)  # frames past the output's length are never shown
                for frame, face in detect_in_order(self.m.detector, frames, self.detect_workers):
                    if store is not None:
                        store.append(frame)
                    matrices.append(aligner.matrix(face.points) if face is not None else None)
                    if len(matrices) % 8 == 0:
                        report("detect", len(matrices), min(estimate, n_out))
                        self._check(cancelled)
                complete = len(matrices) < n_out  # the stream ended first: this is every frame
                errors = reader.errors
            if not matrices:
                raise MediaError(
                    "INVALID_VIDEO", f"no decodable video frames ({errors.strip()[:200] or 'empty stream'})"
                )
            if all(m is None for m in matrices):
                raise PipelineError("NO_FACE", "no face was found in any frame of the video")
            if n_out > len(matrices) and store is None:  # the probe under-estimated: decode again into a store
                store = self._store_frames(video_path, info, len(matrices), work)
        except BaseException:
            if store is not None:
                store.close()
            raise
        count = len(matrices)
        has_face = np.array([m is not None for m in matrices])
        raw = np.stack([m if m is not None else np.full((2, 3), np.nan, np.float32) for m in matrices])
        report("detect", count, count)
        return _SourcePlan(info=info, matrices=_fill_missing(matrices), has_face=has_face, store=store,
                           raw_matrices=raw, complete=complete)  # fmt: skip

    def _source_from_template(
        self, template: Template, video_path: str | Path, info: MediaInfo, n_out: int, work: Path, report: ProgressFn
    ) -> _SourcePlan:
        """The plan the detection pass would give, from a cached template: the same frames
        (the first ``n_out``, or the whole video when it loops)."""
        n_src = min(template.count, n_out)
        has_face = template.has_face[:n_src].copy()
        if not has_face.any():
            raise PipelineError("NO_FACE", "no face was found in any frame of the video")
        raw = template.matrices[:n_src]
        matrices = [raw[i] if has_face[i] else None for i in range(n_src)]
        store = self._store_frames(video_path, info, n_src, work) if n_out > n_src else None
        report("detect", n_src, n_src)
        return _SourcePlan(info=info, matrices=_fill_missing(matrices), has_face=has_face, store=store,
                           raw_matrices=raw.copy(), complete=template.complete, template=template)  # fmt: skip

    @staticmethod
    def _store_frames(video_path: str | Path, info: MediaInfo, count: int, work: Path) -> FrameStore:
        store = FrameStore(work / "frames.raw", info.height, info.width)
        try:
            with FrameReader(video_path, info.width, info.height) as reader:
                for frame in itertools.islice(reader, count):
                    store.append(frame)
        except BaseException:
            store.close()
            raise
        return store

    def _publish_template(self, plan: _SourcePlan) -> dict | None:
        """After a successful job: keep what a later job on the same video can reuse."""
        if self.template_cache is None or plan.cache_key is None:
            return None
        state = {"key": plan.cache_key, "used": plan.cache_state == "hit", "stored": False}
        if plan.cache_state == "miss" and plan.staging is not None and plan.moments_known.all():
            plan.moments_array.flush()
            plan.moments_array = None  # the memory map must be closed before the rename
            try:
                state["stored"] = self.template_cache.commit(
                    plan.cache_key, plan.staging, plan.raw_matrices, plan.has_face, plan.complete
                )
            except OSError as exc:  # a full disk or a racing writer must not fail a finished job
                log.warning("template not stored: %s", exc)
            plan.staging = None
        return state

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
        scheduler.set_timesteps(params.inference_steps)  # on the CPU: no GPU sync per step
        step_t = [t.reshape(1).to(device) for t in scheduler.timesteps]
        generator = torch.Generator(device=device).manual_seed(params.seed)
        latent_size = m.resolution // 8
        # One noise image shared by every frame (as upstream): it keeps the mouth texture
        # consistent over time.
        noise = torch.randn((1, 4, 1, latent_size, latent_size), generator=generator, device=device, dtype=dtype)
        noise = noise * scheduler.init_noise_sigma
        cfg = params.guidance_scale > 1.0
        mask = self.mask.to(device)
        mask_latent = F.interpolate(mask[None, 0:1], size=(latent_size, latent_size)).to(dtype)
        self._open_moments(plan, n_src, latent_size)
        windows = [(s, min(WINDOW, n_out - s)) for s in range(0, n_out, WINDOW)]
        sink = Drain(lambda item: _write_frames(writer, item), depth=2, name="encode-feed")
        try:
            with Prefetch(self._window_inputs(plan, windows, video_path), depth=2, name="decode-align") as inputs:
                for (start, count), (src_idx, frames, faces, mats) in zip(windows, inputs, strict=True):
                    with torch.no_grad():
                        frames_gpu = torch.from_numpy(frames).to(device, non_blocking=True)
                        pixel = faces.to(device, non_blocking=True)
                        moments = self._moments(plan, src_idx, pixel, mask)
                        masked_lat = sample_latents(moments[:, 0], generator)
                        ref_lat = sample_latents(moments[:, 1], generator)
                        cond = torch.cat(
                            [_to_5d(mask_latent.expand(count, -1, -1, -1)), _to_5d(masked_lat), _to_5d(ref_lat)],
                            dim=1,
                        )
                        audio = WhisperFeatureExtractor.chunks(features, FPS, start=start, count=count)
                        audio = audio.to(device, dtype)
                        if cfg:
                            cond = torch.cat([cond, cond])
                            audio = torch.cat([torch.zeros_like(audio), audio])
                        latents = noise.expand(-1, -1, count, -1, -1).clone()
                        cache = DeepCacheState(DEEPCACHE_INTERVAL) if params.enable_deepcache else None
                        for k, t in enumerate(scheduler.timesteps):
                            self._check(cancelled)
                            inp = torch.cat([latents, latents]) if cfg else latents
                            inp = torch.cat([scheduler.scale_model_input(inp, t), cond], dim=1)
                            if cache is None or cache.refresh_now():
                                pred, feature = self.unet.full(inp, step_t[k], audio)
                                if cache is not None:
                                    cache.store(feature)
                            else:
                                pred = self.unet.shallow(inp, step_t[k], audio, cache.feature)
                            if cache is not None:
                                cache.advance()
                            if cfg:
                                uncond, cond_pred = pred.chunk(2)
                                pred = uncond + params.guidance_scale * (cond_pred - uncond)
                            latents = scheduler.step(pred, t, latents, eta=0.0, generator=generator).prev_sample
                            report("denoise", start + count * (k + 1) // params.inference_steps, n_out)
                        decoded = self.vae.decode(latents[0].permute(1, 0, 2, 3)).float()
                        # Generated mouth region, original upper face.
                        combined = decoded * (1 - mask) + pixel * mask
                        out = aligner_restore(aligner, frames_gpu, combined, mats, plan.has_face[src_idx], device)
                        sink.put(_to_host(out))
            sink.finish()
        except BaseException:
            sink.abort()
            raise

    def _open_moments(self, plan: _SourcePlan, n_src: int, latent_size: int) -> None:
        """Where this job's encoder moments go, one row per source frame: read from the
        template on a hit, else a memory map in the cache's staging folder (published after
        the job) or in the work folder (looped frames reuse their moments either way)."""
        if plan.template is not None:
            plan.moments_array = plan.template.moments
            plan.moments_known = np.ones(n_src, bool)
            return
        if self.template_cache is not None and plan.cache_key is not None:
            plan.staging = self.template_cache.staging()
            folder = plan.staging
        else:
            folder = plan.work
            plan.scratch = folder / "moments.npy"
        plan.moments_array = np.lib.format.open_memmap(
            folder / "moments.npy",
            mode="w+",
            dtype=numpy_dtype(self.m.dtype),
            shape=(n_src, 2, 8, latent_size, latent_size),
        )
        plan.moments_known = np.zeros(n_src, bool)

    def _moments(self, plan: _SourcePlan, src_idx: list[int], pixel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(count, 2, 8, h, w) encoder moments (masked face, face) of the window's frames."""
        idx = np.asarray(src_idx)
        todo = np.flatnonzero(~plan.moments_known[idx])
        if len(todo):
            faces = pixel[torch.from_numpy(todo).to(pixel.device)]
            fresh = torch.stack([self.vae.moments(faces * mask), self.vae.moments(faces)], dim=1)
            host = to_numpy(fresh)
            for j, row in zip(todo, host, strict=True):
                if not plan.moments_known[idx[j]]:
                    plan.moments_array[idx[j]] = row
                    plan.moments_known[idx[j]] = True
            if len(todo) == len(idx):
                return fresh
        return from_numpy(plan.moments_array[idx], self.m.dtype).to(pixel.device)

    def _window_inputs(self, plan: _SourcePlan, windows: list[tuple[int, int]], video_path: str | Path):
        """Runs ahead on a thread: each window's source frames, aligned faces (``(count, 3,
        r, r)`` in [-1, 1]) and matrices."""
        device = self.m.device
        aligner = FaceAligner(self.m.resolution, device=device)
        side = torch.cuda.Stream(device) if device.type == "cuda" else None
        sequential = None if plan.store is not None else FrameReader(video_path, plan.info.width, plan.info.height)
        n_src = len(plan.has_face)
        try:
            for start, count in windows:
                src_idx = [ping_pong_index(j, n_src) for j in range(start, start + count)]
                frames = np.stack([self._frame(plan, sequential, i) for i in src_idx])
                mats = torch.from_numpy(plan.matrices[src_idx])
                with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                    faces = self._aligned_faces(aligner, frames, mats)
                yield src_idx, frames, faces, mats
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


def _to_host(frames: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start the copy of finished frames to the host; the writer thread waits for it."""
    if frames.device.type != "cuda":
        return frames, None
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    host.copy_(frames, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def _write_frames(writer: VideoWriter, item: tuple[torch.Tensor, torch.cuda.Event | None]) -> None:
    frames, done = item
    if done is not None:
        done.synchronize()
    for frame in frames.numpy():
        writer.write(frame)


def aligner_restore(
    aligner: FaceAligner,
    frames: torch.Tensor,
    faces: torch.Tensor,
    mats: torch.Tensor,
    has_face: np.ndarray,
    device: torch.device,
) -> torch.Tensor:
    """Paste generated faces into the frames that had one; others pass through unchanged."""
    out = frames.clone()
    chunk = len(frames) if device.type == "cuda" else 1  # bounded host memory on the CPU
    idx = np.flatnonzero(has_face)
    for s in range(0, len(idx), chunk):
        sel = torch.from_numpy(idx[s : s + chunk]).to(frames.device)
        out[sel] = aligner.restore_batch(frames[sel], faces[sel], mats[sel.cpu()]).to(out.device)
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
