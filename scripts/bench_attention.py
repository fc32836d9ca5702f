"""The UNet's most expensive attention alone: spatial self-attention at the 64x64 latent
level (32 frames of a guided window, 8 heads of dim 40, 4096 tokens), per SDPA back end,
with the head dim padded to 48 and 64 (zeros in q/k/v change nothing but the cost; the
scale stays 1/sqrt(40)), and FlexAttention compiled. Used by ``bench_variants --attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from scripts.bench_gpu import timed

BATCH, HEADS, TOKENS, DIM = 32, 8, 4096, 40


def _pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    return F.pad(x, (0, dim - x.shape[-1])) if dim > x.shape[-1] else x


def attention_rows(results: dict) -> list[tuple[str, str]]:
    gen = torch.Generator(device="cuda").manual_seed(3)
    q, k, v = (torch.randn(BATCH, HEADS, TOKENS, DIM, device="cuda", dtype=torch.float16, generator=gen) for _ in "qkv")
    scale = DIM**-0.5
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=scale)
    flops = 4 * BATCH * HEADS * TOKENS * TOKENS * DIM
    rows = []
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION}  # fmt: skip
    for name, backend in backends.items():
        for dim in (40, 48, 64):
            qp, kp, vp = (_pad(t, dim) for t in (q, k, v))
            try:
                with sdpa_kernel(backend), torch.no_grad():
                    sec = timed(lambda a=qp, b=kp, c=vp: F.scaled_dot_product_attention(a, b, c, scale=scale), reps=10)
                    out = F.scaled_dot_product_attention(qp, kp, vp, scale=scale)[..., :DIM]
                err = ((out.float() - ref).norm() / ref.norm()).item()
                text = f"{sec * 1000:.2f} ms, {flops / sec / 1e12:.0f} TFLOP/s useful, rel err {err:.1e}"
                results[f"attn_{name}_{dim}_ms"] = sec * 1000
            except RuntimeError as exc:
                text = f"not supported ({str(exc).splitlines()[0][:60]})"
            rows.append((f"attention {name}, head dim {DIM} as {dim}", text))
    try:
        from torch.nn.attention.flex_attention import flex_attention

        flex = torch.compile(flex_attention, dynamic=False)
        with torch.no_grad():
            sec = timed(lambda: flex(q, k, v, scale=scale), reps=10)
        rows.append(("attention FlexAttention (compiled), dim 40", f"{sec * 1000:.2f} ms"))
        results["attn_flex_40_ms"] = sec * 1000
    except Exception as exc:  # noqa: BLE001 - a benchmark row, not a failure
        rows.append(("attention FlexAttention (compiled), dim 40", f"failed: {str(exc).splitlines()[0][:80]}"))
    return rows
