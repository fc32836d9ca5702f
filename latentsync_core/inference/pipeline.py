"""The lip-sync pipeline: video + speech in, lip-synced MP4 out, in bounded memory.

``LipSyncPipeline.run`` reads as its stages (``stages.Stage``), each reported to the
progress callback as a ``ProgressEvent``:

1. ``probe``   - check both inputs before any heavy work;
2. ``audio``   - Whisper features; the output has one frame per audio window (25 fps);
3. ``detect``  - plan the source (``source.py``): face alignment matrices from one
                 streaming detection pass, or from the template cache;
4. ``denoise`` - per 16-frame window (``window.py``): conditioning, DDIM with guidance
                 and DeepCache, decode and composite, on this device or a borrowed
                 one (``window_split.py``); emitted in order to the encoder (``output.py``);
5. ``encode``  - finish the H.264 + AAC file.

Frames without a usable face pass through unchanged and are listed in the result. To keep
the GPU busy, decoding and alignment run one window ahead on a thread and the encoder is
fed from another; detection uses several threads.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.common.background import Prefetch
from latentsync_core.common.errors import MediaError
from latentsync_core.inference.compile_cache import CompileArtifacts, artifact_key, environment_key_fields
from latentsync_core.inference.conditioning import load_mask, with_aligned_faces
from latentsync_core.inference.context import CancelFn, JobContext, open_job
from latentsync_core.inference.denoise import WindowNoise
from latentsync_core.inference.face_selection import parse_face
from latentsync_core.inference.length_job import fit_length
from latentsync_core.inference.length_modes import frames_to_read
from latentsync_core.inference.memory import FramePolicy, return_freed_frames
from latentsync_core.inference.output import OutputVideo
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.runners import AccelOptions, UNetRunner, VAERunner
from latentsync_core.inference.selected_source import plan_selected_source
from latentsync_core.inference.source import WINDOW, SourcePlan, SourcePlanner
from latentsync_core.inference.stages import ProgressFn, Stage
from latentsync_core.inference.template_cache import NoTemplateCache, TemplateCache, TemplateSession
from latentsync_core.inference.window import DeviceModels, JobWindows
from latentsync_core.inference.window_split import DeviceLender, run_windows
from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.limits import MediaLimits
from latentsync_core.media.probe import probe_inputs
from latentsync_core.models.loading import ModelBundle
from latentsync_core.sync.speaker import SpeakerScorer, SyncNetSpeakerScorer
from latentsync_core.sync.stream import SyncTap
from latentsync_core.vision.face_detection import default_detect_workers
from latentsync_core.weights.demo import DEMO_NOTICE

log = logging.getLogger(__name__)


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
    sync: dict | None = None  # SyncNetV2 score of the output (SyncReport.to_json); None when off or no face track
    fast_path: bool = False  # compiled UNet/VAE were used for full windows
    lanes: list[dict] = field(default_factory=list)  # [{"device", "windows"}]: the job's device first
    face: dict | None = None  # with a face selection: {"face", "shots": [{"track", "reason", ...}]}
    sync_mode: dict | None = None  # with a sync_mode other than bounce: LengthPlan.to_json()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["output_path"] = str(self.output_path)
        return d


class LipSyncPipeline:
    """``run`` turns a video and a speech track into a lip-synced MP4.

    ``accel`` picks the execution of the UNet and VAE (eager reference, channels-last,
    compiled); ``template_cache`` keeps the audio-independent work on each video;
    ``detect_workers`` threads run the face detector during the first pass, on every
    ``detect_stride``-th frame (1: every frame; more: landmarks interpolated in between
    where the face moved little, see ``detect_strided``).
    """

    def __init__(
        self,
        models: ModelBundle,
        accel: AccelOptions | None = None,
        template_cache: TemplateCache | None = None,
        detect_workers: int | None = None,
        syncnet: torch.nn.Module | None = None,
        limits: MediaLimits | None = None,
        detect_stride: int = 1,
    ):
        self.m = models
        return_freed_frames()  # freed frames leave the process (``memory.py``)
        self.limits = limits or MediaLimits()  # what inputs may be; a service sets its own
        self.syncnet = syncnet  # a SyncNetV2 with its ``weights_label``: every output gets a sync score
        # judges face=speaker; without one, speaker falls back to the largest face track
        self.speaker_scorer: SpeakerScorer | None = SyncNetSpeakerScorer(syncnet) if syncnet is not None else None
        self.accel = accel or AccelOptions()
        self.unet = UNetRunner(models.unet, self.accel)
        self.vae = VAERunner(models.vae, self.accel)
        # what this device gives the per-window stages (its own jobs' and borrowed windows)
        self.window_models = DeviceModels(
            models.device,
            models.dtype,
            models.resolution,
            self.unet,
            self.vae,
            models.scheduler,
            load_mask(models.resolution),
        )
        self.templates = template_cache if template_cache is not None else NoTemplateCache()
        workers = detect_workers if detect_workers is not None else default_detect_workers()
        self.planner = SourcePlanner(models.detector, models.resolution, workers, detect_stride)
        self.fast_path_ready = not self.accel.compile
        self.compile_artifacts = "none"  # loaded / saved / none: how the last compile used the artifact cache

    # ---- set-up and what the service reports ---------------------------------------------
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

    def prepare_fast_path(self, artifacts: CompileArtifacts | None = None) -> float:
        """Compile the full-window shapes (guidance on: batch 2). Safe to call on a thread
        while jobs run: they use the eager modules until this returns. With ``artifacts``,
        kernels compiled before for this exact set-up are loaded first (a fresh process
        then compiles in seconds) and, when there were none, saved after. Seconds taken."""
        if not self.accel.compile:
            return 0.0
        unet_shape, ctx_shape, image_shape = self._window_shapes()
        fields = self.compile_key_fields()
        key = artifact_key(fields)
        loaded = artifacts is not None and artifacts.load(key)
        seconds = self.unet.prepare(unet_shape, ctx_shape) + self.vae.prepare(image_shape)
        self.fast_path_ready = True
        if loaded:
            self.compile_artifacts = "loaded"
        elif artifacts is not None and artifacts.save(key, fields) is not None:
            self.compile_artifacts = "saved"
        log.info("compiled UNet and VAE for full windows in %.1f s (artifacts: %s)", seconds, self.compile_artifacts)
        return seconds

    def compile_key_fields(self) -> dict[str, object]:
        """Everything the compiled full-window kernels depend on (the artifact cache's key)."""
        m = self.m
        unet_shape, ctx_shape, image_shape = self._window_shapes()
        return {
            **environment_key_fields(m.device),
            "unet": asdict(m.unet.config),
            "vae": dict(m.vae.config),
            "dtype": str(m.dtype),
            "channels_last": self.accel.channels_last,
            "backend": self.accel.backend,
            "shapes": [unet_shape, ctx_shape, image_shape],
            **({"fp8": True} if self.accel.fp8 else {}),  # only when on: the default key stays as it was
        }

    def fingerprint(self) -> str:
        """What cached templates depend on besides the video's bytes."""
        m = self.m
        key = f"{m.resolution}|{m.detector.name}|{m.dtype}|{m.device.type}|{m.vae_id}|{self.accel.channels_last}"
        stride = self.planner.detect_stride  # interpolated landmarks make other matrices
        return key if stride <= 1 else f"{key}|stride{stride}:{self.planner.max_motion:g}"

    def describe(self) -> dict:
        """What is loaded, for a status page: device, device name, dtype, weights kind,
        resolution, load time, whether compiled graphs serve full windows (and a notice
        with demo weights)."""
        m = self.m
        cuda = m.device.type == "cuda"
        info = {
            "device": str(m.device),
            "device_name": torch.cuda.get_device_name(m.device) if cuda else "cpu",
            "dtype": str(m.dtype).removeprefix("torch."),
            "weights": m.weights_kind,
            "resolution": m.resolution,
            "load_seconds": round(m.load_seconds, 2),
            "fast_path_ready": self.fast_path_ready and self.accel.compile,
            "compile_artifacts": self.compile_artifacts,
        }
        if m.is_demo:
            info["notice"] = "demo weights: random model, no real lip-sync"
        return info

    def memory_stats(self) -> dict[str, int]:
        """Bytes of GPU memory this process holds: allocated, reserved, peak; {} on the CPU."""
        device = self.m.device
        if device.type != "cuda":
            return {}
        return {
            "allocated": torch.cuda.memory_allocated(device),
            "reserved": torch.cuda.memory_reserved(device),
            "peak": torch.cuda.max_memory_allocated(device),
        }

    # ---- a job ---------------------------------------------------------------------------
    def run(
        self,
        video_path: str | Path,
        audio_path: str | Path,
        output_path: str | Path,
        params: LipSyncParams | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        work_dir: str | Path | None = None,
        lender: DeviceLender | None = None,
        stream_path: str | Path | None = None,
    ) -> LipSyncResult:
        """``progress`` receives a ``ProgressEvent`` per step of each stage. ``lender``,
        when given, may lend idle devices (their pipelines) for some of the job's windows;
        the output is the same as on this pipeline's device alone. ``stream_path``, when
        given, gets a fragmented MP4 (with the speech) of the frames finished so far,
        growing window by window while the job runs (``live_mp4.py``)."""
        params = params or LipSyncParams()
        params.validate()
        m = self.m
        with (
            open_job(
                video_path,
                audio_path,
                output_path,
                params,
                m.device,
                m.dtype,
                progress,
                should_cancel,
                work_dir,
                self.limits,
            ) as ctx,
            ExitStack() as job,
        ):
            with ctx.stage(Stage.PROBE):
                video, _ = probe_inputs(ctx.video_path, ctx.audio_path, ctx.limits)
            samples, features, n_out = self._encode_audio(ctx)
            session, plan = self._plan_source(ctx, job, video, n_out)
            samples, features, n_out = fit_length(ctx, plan, samples, features, n_out, m.whisper)  # sync_mode
            tap = SyncTap(self.syncnet, self.syncnet.weights_label, plan.output_boxes(n_out)) if self.syncnet else None
            with ctx.timed(Stage.DENOISE):
                comment = DEMO_NOTICE if m.is_demo else None
                memory = FramePolicy.for_frames(video.width, video.height)  # windows held at once
                output = job.enter_context(
                    OutputVideo(ctx, video.width, video.height, comment, tap, stream_path, memory.windows_behind)
                )
                lanes = self._generate(ctx, plan, session, features, n_out, output, lender, memory)
            with ctx.stage(Stage.ENCODE):
                output.close()
            sync = self._score_sync(ctx, tap, samples)
            result = self._result(ctx, output, plan, n_out, session.publish(plan), sync)
            result.lanes = lanes
            return result

    def _encode_audio(self, ctx: JobContext) -> tuple[np.ndarray, torch.Tensor, int]:
        """The speech, its Whisper features, and the number of output frames they give."""
        with ctx.stage(Stage.AUDIO):
            samples = load_audio(ctx.audio_path, max_seconds=ctx.limits.max_audio_seconds())
            if samples.size < 160:  # under 10 ms: nothing to lip-sync to
                raise MediaError("EMPTY_AUDIO", "the audio track is empty")
            features = self.m.whisper.features_from_samples(samples)
        ctx.check_cancelled()
        return samples, features, WhisperFeatureExtractor.num_chunks(len(features), FPS)

    @staticmethod
    def _score_sync(ctx: JobContext, tap: SyncTap | None, samples: np.ndarray) -> dict | None:
        """The output's sync score (the tap embedded the frames while they were written)."""
        if tap is None:
            return None
        report = tap.finish(to_int16(samples))
        ctx.timings["sync"] = round(tap.seconds, 3)  # mostly spent on the encoder's thread, beside the GPU
        return report.to_json() if report is not None else None

    def _plan_source(
        self, ctx: JobContext, job: ExitStack, video: MediaInfo, n_out: int
    ) -> tuple[TemplateSession, SourcePlan]:
        """The job's template session and source plan (from the session's template, if
        the cache has one for this video, else by detection); both closed with ``job``."""
        selection = parse_face(ctx.params.face) if ctx.params.face is not None else None
        # A face selection's plan is cached under its own key (it is not the largest face per
        # frame); face=speaker's also depends on the scorer's net, so it is not cached.
        fingerprint = self.fingerprint() if selection is None else f"{self.fingerprint()}|face={selection}"
        cached = selection is None or selection.kind != "speaker"
        templates = self.templates if cached else NoTemplateCache()
        reads = frames_to_read(ctx.params.sync_mode, n_out) or sys.maxsize  # sys.maxsize: the whole video
        with ctx.timed(Stage.DETECT):
            session = job.enter_context(templates.open(ctx.video_path, fingerprint, ctx.dtype, reads, ctx.work))
            if selection is None or session.template is not None:
                plan = job.enter_context(self.planner.plan(ctx, video, n_out, session.template))
                if selection is not None:
                    plan.face_choice = session.template.face_choice  # type: ignore[union-attr]
            else:
                p = self.planner
                plan = job.enter_context(
                    plan_selected_source(
                        ctx,
                        video,
                        n_out,
                        selection,
                        p.detector,
                        p.resolution,
                        p.detect_workers,
                        self.speaker_scorer,
                    )
                )
        return session, plan

    def _generate(
        self,
        ctx: JobContext,
        plan: SourcePlan,
        session: TemplateSession,
        features: torch.Tensor,
        n_out: int,
        output: OutputVideo,
        lender: DeviceLender | None,
        memory: FramePolicy,
    ) -> list[dict]:
        """For each window (``window.py``; on this device or a borrowed one,
        ``window_split.py``): conditioning -> denoise -> decode and composite -> emit, in
        order. What each device did."""
        m = self.m
        latent_size = m.resolution // 8
        counts = [min(WINDOW, n_out - start) for start in range(0, n_out, WINDOW)]
        noise = WindowNoise(ctx.params.seed, counts, latent_size, ctx.device, m.dtype)  # before any window
        session.open_moments(plan.frame_count, latent_size)
        job = JobWindows(ctx, features, noise, session, n_out)
        windows = with_aligned_faces(plan.windows(ctx.video_path, n_out), m.resolution, ctx.device, memory.float_batch)
        with Prefetch(windows, depth=memory.windows_ahead, name="decode-align") as prepared:
            lanes = run_windows(self, job, prepared, output.emit, lender)
        output.drain()
        return lanes

    def _result(
        self, ctx: JobContext, output: OutputVideo, plan: SourcePlan, n_out: int, cache: dict | None, sync: dict | None
    ) -> LipSyncResult:
        """What the job made, as its file has it (frames counted in the file, the encoded size)."""
        m = self.m
        if m.is_demo:
            log.warning("%s: %s", ctx.output_path.name, DEMO_NOTICE)
        return LipSyncResult(
            output_path=ctx.output_path,
            frames=output.frames_in_file,
            duration=output.frames_in_file / FPS,
            width=output.size_in_file[0],
            height=output.size_in_file[1],
            fps=FPS,
            frames_without_face=plan.frames_without_face,  # every decoded source frame is shown
            source_frames=plan.frame_count,
            looped=n_out > plan.frame_count,
            weights_kind=m.weights_kind,
            timings=ctx.timings,
            notice=DEMO_NOTICE if m.is_demo else None,
            template_cache=cache,
            sync=sync,
            fast_path=self.fast_path_ready and self.accel.compile,
            face=plan.face_choice,
            sync_mode=plan.length.to_json() if plan.length is not None else None,
        )
