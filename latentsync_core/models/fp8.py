"""Float8 (e4m3) Linear layers for the UNet's transformer blocks, an opt-in speed option.

Weights are quantized once with one scale per output channel; activations are quantized
on every call with one scale per row (token), and the product runs through
``torch._scaled_mm`` (the fp8 tensor cores of Hopper / Ada GPUs; a reference kernel on the
CPU). Row-wise scaled products only return bfloat16, so the result is cast back to the
model's dtype and the bias is added there. Under ``torch.compile`` the activation's
scale and cast fuse into the kernels around the product.

Not upstream's arithmetic: e4m3 keeps 3 mantissa bits, so each operand carries up to
2^-4 relative rounding; the exact path stays float16 / bfloat16 (this is never a default).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
# Sizes a float8 product accepts: both dimensions of the weight in multiples of 16.
ALIGN = 16
# Layers whose input rows are a handful (the timestep embedding: one row per sample)
# gain nothing and would need padding: left in the model's dtype.
SKIPPED_NAMES = ("time_embedding", "time_emb_proj")
# The default choice of AccelOptions(fp8=True): layers of at least this many inputs. The
# 320-wide layers (the top level: 131072 rows a call) move as many bytes as they compute,
# so quantizing their input costs about what the float8 product saves (NOTES.md).
FP8_MIN_IN_FEATURES = 640


def fp8_supported(device: torch.device) -> bool:
    """Float8 products run on the CPU (slowly: tests) and on CUDA GPUs of compute
    capability 8.9 or newer (Ada, Hopper)."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 9)
    return False


def _rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, k) -> float8 rows and their float32 scales (rows, 1): x ~= q * scale."""
    amax = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)  # an all-zero row stays 0
    scale = amax / FP8_MAX
    # row-major, as the product's first operand must be (a transposed view keeps its strides)
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8).contiguous()
    return q, scale


class Float8Linear(nn.Module):
    """A frozen ``nn.Linear`` whose product runs in float8 (inference only)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        q, scale = _rowwise(linear.weight.detach())  # one scale per output channel
        self.register_buffer("weight_fp8", q)  # (out, in), row-major: its .t() is the column-major operand
        self.register_buffer("weight_scale", scale.reshape(1, -1))  # (1, out) float32
        bias = linear.bias
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.in_features)
        q, scale = _rowwise(rows)
        y = torch._scaled_mm(
            q, self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale, out_dtype=torch.bfloat16
        ).to(self.out_dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 row-wise"


def eligible(name: str, module: nn.Module, min_in_features: int = 0) -> bool:
    """A Linear layer this module turns into float8: sizes in multiples of 16, at least
    ``min_in_features`` inputs, not one of the per-sample timestep layers."""
    if not isinstance(module, nn.Linear):
        return False
    if any(part in SKIPPED_NAMES for part in name.split(".")):
        return False
    k, n = module.in_features, module.out_features
    return k % ALIGN == 0 and n % ALIGN == 0 and k >= min_in_features


def convert_linears_to_fp8(
    model: nn.Module,
    min_in_features: int = 0,
    include: Callable[[str, nn.Linear], bool] | None = None,
) -> list[str]:
    """Replace the eligible Linear layers of ``model`` in place by ``Float8Linear``
    (``include`` narrows the choice further); the names replaced. A second call finds
    nothing left to replace."""
    chosen = [
        (name, m)
        for name, m in model.named_modules()
        if eligible(name, m, min_in_features) and (include is None or include(name, m))
    ]
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Float8Linear(linear))
    return [name for name, _ in chosen]
