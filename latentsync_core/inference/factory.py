"""Building a ready pipeline from plain options: models, execution (compile), template
cache, detection threads and warm-up. The service and the command line both use it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentsync_core.config import CONFIG_DIR
from latentsync_core.inference.pipeline import LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.loading import load_models


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
    warmup: bool = True  # one eager call at full window size before the first job


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
    )
    if options.warmup:
        pipeline.warmup()
    return pipeline
