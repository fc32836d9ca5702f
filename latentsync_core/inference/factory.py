"""Building a ready pipeline from plain options: models, execution (compile), template
cache, detection threads and warm-up. The service and the command line both use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.inference.pipeline import LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.media.limits import MediaLimits
from latentsync_core.models.loading import load_models
from latentsync_core.sync.video import SYNCNET_V2_FILE, load_syncnet_v2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    weights: str  # "official" (files under checkpoint_dir) or "demo" (random, cached in cache_dir)
    checkpoint_dir: Path
    cache_dir: Path
    unet_config: Path = CONFIG_DIR / "unet" / "stage2_512.yaml"
    device: str | None = None  # None or "auto": cuda:<gpu_id> when there is a GPU, else cpu
    gpu_id: int = 0
    dtype: str | None = None  # None or "auto": float16 on a GPU, float32 on the CPU
    compile: bool | None = None  # torch.compile full windows (prepare_fast_path); None: on a GPU
    template_cache_dir: Path | None = None  # None: no template cache
    template_cache_max_bytes: int = 4 << 30
    detect_workers: int | None = None  # None: all cores but one
    detect_stride: int = 1  # detect every k-th frame, interpolate between (LipSyncPipeline); 1: every frame
    warmup: bool = True  # one eager call at full window size before the first job
    # Score every output with SyncNetV2: True, False, or None = when its weights exist
    # (checkpoint_dir/auxiliary/syncnet_v2.model) or with demo weights (a random SyncNet).
    sync_score: bool | None = None
    media_limits: MediaLimits | None = None  # what job inputs may be; None: only the probe is limited


def _syncnet(options: PipelineOptions, device: torch.device) -> torch.nn.Module | None:
    """The SyncNetV2 that scores outputs, or None (off, or auto without its weights)."""
    weights = "demo" if options.weights == "demo" else "official"
    if options.sync_score is False:
        return None
    if (
        options.sync_score is None
        and weights == "official"
        and not (options.checkpoint_dir / SYNCNET_V2_FILE).is_file()
    ):
        log.info("sync scoring off: %s not found", options.checkpoint_dir / SYNCNET_V2_FILE)
        return None
    net, _ = load_syncnet_v2(options.checkpoint_dir, weights, device)  # on: a missing file is an error
    return net


def build_pipeline(options: PipelineOptions) -> LipSyncPipeline:
    """Load the models and build the pipeline (warmed up if asked). Compiling is left to
    the caller (``prepare_fast_path``: minutes when cold, so a service runs it on a thread)."""
    models = load_models(
        options.weights,
        options.checkpoint_dir,
        options.cache_dir,
        options.unet_config,
        options.device,
        options.gpu_id,
        options.dtype,
    )
    cache = (
        TemplateCache(options.template_cache_dir, options.template_cache_max_bytes)
        if options.template_cache_dir is not None
        else None
    )
    pipeline = LipSyncPipeline(
        models,
        accel=AccelOptions.for_device(models.device, compile=options.compile),
        template_cache=cache,
        detect_workers=options.detect_workers,
        syncnet=_syncnet(options, models.device),
        limits=options.media_limits,
        detect_stride=options.detect_stride,
    )
    if options.warmup:
        pipeline.warmup()
    return pipeline
