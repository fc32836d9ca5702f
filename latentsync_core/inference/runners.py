"""How the UNet and the VAE run: channels-last layout and ``torch.compile`` for the one
shape every full window has. Anything else (a short last window, no guidance)
runs the same modules eagerly, so a new shape never triggers a compile in the middle of
a job. The eager modules are the reference the fast path is tested against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL

from latentsync_core.models import UNet3DConditionModel
from latentsync_core.models.fp8 import FP8_MIN_IN_FEATURES, convert_linears_to_fp8, fp8_supported
from latentsync_core.models.vae import SCALING_FACTOR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccelOptions:
    compile: bool = False  # torch.compile the full-window shapes at warm-up
    channels_last: bool = False  # NHWC activations: no layout conversions around convolutions
    backend: str = "inductor"  # tests trace with "aot_eager": the same graph, no code generation
    # float8 Linear layers in the UNet's transformer blocks (models/fp8.py): not upstream's
    # arithmetic, so never on by default
    fp8: bool = False
    fp8_min_in_features: int = FP8_MIN_IN_FEATURES  # narrower layers stay in the model's dtype

    @classmethod
    def for_device(cls, device: torch.device, compile: bool | None = None, fp8: bool = False) -> AccelOptions:
        """Channels-last on a GPU; compile there unless told otherwise (a CPU compile
        needs a C++ tool chain and buys little)."""
        on_gpu = device.type == "cuda"
        return cls(compile=on_gpu if compile is None else compile, channels_last=on_gpu, fp8=fp8)


def _to_channels_last(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)


def _compile(fn: Callable, options: AccelOptions) -> Callable:
    # fullgraph: a graph break would silently fall back to slow Python between pieces.
    return torch.compile(fn, dynamic=False, fullgraph=True, backend=options.backend)


class _Guarded:
    """A compiled function that never compiles again: inputs that would need a new graph
    (another dtype, layout or shape than the one prepared) run ``eager`` instead of
    stalling a job for a minute-long compile."""

    def __init__(self, compiled: Callable, eager: Callable, name: str):
        self.compiled, self.eager, self.name = compiled, eager, name
        self.fallbacks = 0

    def __call__(self, *args, **kwargs):
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                return self.compiled(*args, **kwargs)
        except RuntimeError as exc:
            if "recompil" not in str(exc).lower():
                raise
            self.fallbacks += 1
            if self.fallbacks == 1:
                log.warning("%s: inputs differ from the compiled graph, running eagerly (%s)", self.name, exc)
            return self.eager(*args, **kwargs)


class UNetRunner:
    """The UNet's two tensor functions, ``full`` (with the DeepCache feature) and
    ``shallow``; compiled for ``(batch, 13, frames, h, w)`` once ``prepare`` ran with that
    shape, eager for any other. Which one a step uses is ``DeepCacheState``'s decision."""

    def __init__(self, unet: UNet3DConditionModel, options: AccelOptions):
        self.unet = unet
        self.options = options
        if options.channels_last:
            _to_channels_last(unet)
        if options.fp8:
            device = next(unet.parameters()).device
            if not fp8_supported(device):
                raise ValueError(f"fp8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper), not {device}")
            # in place: every pipeline sharing this model runs float8 from here on
            convert_linears_to_fp8(unet, options.fp8_min_in_features)
        self._shape: tuple[int, ...] | None = None
        self._full: Callable = unet.forward_full
        self._shallow: Callable = unet.forward_shallow

    def run_once(self, shape: tuple[int, ...], context_shape: tuple[int, ...], full=None, shallow=None) -> float:
        """Both paths once at ``shape`` (kernel selection, allocator growth); seconds."""
        start = time.perf_counter()
        p = next(self.unet.parameters())
        x = self._layout(torch.randn(shape, device=p.device, dtype=p.dtype))
        ctx = torch.randn(context_shape, device=p.device, dtype=p.dtype)
        t = torch.tensor([500], device=p.device)  # int64, as the scheduler's timesteps
        with torch.no_grad():
            _, feature = (full or self.unet.forward_full)(x, t, ctx, capture=True)
            (shallow or self.unet.forward_shallow)(x, t, ctx, feature)
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        return time.perf_counter() - start

    def prepare(self, shape: tuple[int, ...], context_shape: tuple[int, ...]) -> float:
        """Compile (when enabled) for ``shape`` and run once; seconds. Calls made meanwhile
        (from another thread) stay on the eager modules until the compiled ones are ready."""
        if not self.options.compile:
            self._shape = tuple(shape)
            return self.run_once(shape, context_shape)
        full = _compile(self.unet.forward_full, self.options)
        shallow = _compile(self.unet.forward_shallow, self.options)
        seconds = self.run_once(shape, context_shape, full, shallow)
        self._full = _Guarded(full, self.unet.forward_full, "UNet")
        self._shallow = _Guarded(shallow, self.unet.forward_shallow, "UNet shallow step")
        self._shape = tuple(shape)
        return seconds

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last_3d) if self.options.channels_last else x

    def full(
        self, sample: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Noise prediction and the DeepCache feature."""
        fn = self._full if tuple(sample.shape) == self._shape else self.unet.forward_full
        return fn(self._layout(sample), t, ctx, capture=True)

    def shallow(self, sample: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        fn = self._shallow if tuple(sample.shape) == self._shape else self.unet.forward_shallow
        return fn(self._layout(sample), t, ctx, feature)


class VAERunner:
    """The SD VAE split where the pipeline needs it: encoder moments (the Gaussian's
    parameters, sampled by the caller with the job's generator) and the decoder."""

    def __init__(self, vae: AutoencoderKL, options: AccelOptions):
        self.vae = vae
        self.options = options
        if options.channels_last:
            _to_channels_last(vae)
        self._shape: tuple[int, ...] | None = None
        self._moments: Callable = self._moments_eager
        self._decode: Callable = self._decode_eager

    def _moments_eager(self, images: torch.Tensor) -> torch.Tensor:
        h = self.vae.encoder(images)
        return self.vae.quant_conv(h) if self.vae.quant_conv is not None else h

    def _decode_eager(self, latents: torch.Tensor) -> torch.Tensor:
        z = self.vae.post_quant_conv(latents) if self.vae.post_quant_conv is not None else latents
        return self.vae.decoder(z)

    def run_once(self, image_shape: tuple[int, ...], moments=None, decode=None) -> float:
        start = time.perf_counter()
        p = next(self.vae.parameters())
        n, _, h, w = image_shape
        with torch.no_grad():
            (moments or self._moments_eager)(self._layout(torch.randn(image_shape, device=p.device)))
            (decode or self._decode_eager)(self._layout(torch.randn((n, 4, h // 8, w // 8), device=p.device)))
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        return time.perf_counter() - start

    def prepare(self, image_shape: tuple[int, ...]) -> float:
        """Compile (when enabled) for batches of ``image_shape``; smaller batches are padded
        to it. Seconds."""
        if not self.options.compile:
            return self.run_once(image_shape)
        moments = _compile(self._moments_eager, self.options)
        decode = _compile(self._decode_eager, self.options)
        seconds = self.run_once(image_shape, moments, decode)
        self._moments = _Guarded(moments, self._moments_eager, "VAE encoder")
        self._decode = _Guarded(decode, self._decode_eager, "VAE decoder")
        self._shape = tuple(image_shape)
        return seconds

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.vae.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def _call(self, fast: Callable, eager: Callable, x: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """The compiled function when the batch fits the compiled shape (padded with zeros:
        every image is processed on its own), else the eager one."""
        n = x.shape[0]
        shape = self._shape
        if shape is None or tuple(image_size) != tuple(shape[2:]) or n > shape[0]:
            return eager(self._layout(x))
        if n < shape[0]:
            x = torch.cat([x, x.new_zeros((shape[0] - n, *x.shape[1:]))])
        return fast(self._layout(x))[:n]

    def moments(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 8, H/8, W/8): mean and log-variance."""
        return self._call(self._moments, self._moments_eager, images, images.shape[2:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, 4, h, w) -> images (N, 3, 8h, 8w) in about [-1, 1]."""
        size = (8 * latents.shape[2], 8 * latents.shape[3])
        return self._call(self._decode, self._decode_eager, latents / SCALING_FACTOR, size)
