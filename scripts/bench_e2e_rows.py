"""The runs ``scripts/bench_e2e.py`` times (issue 21's table), in the order they run, and
the figures of earlier runs printed beside them.

Earlier figures are copied from NOTES.md (v3: our fast path and upstream's pipeline, one
H200, 2026-11-21, detection included on first requests) and from issue 21's text (H200,
fixed landmarks); they were not measured by this run and are labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from latentsync_core.inference.params import RECOMMENDED_STEPS, apply_quality

# Earlier figures, frames/s end to end (see the module's docstring for their origin).
_OURS_FIRST = "ours 5.39 (NOTES v3) / 5.6 (issue 21)"
_OURS_HIT = "ours 6.29 (NOTES v3) / 6.2 (issue 21)"
_OURS_DC_FIRST = "ours 11.3 (issue 21)"
_OURS_DC_HIT = "ours 13.60 (NOTES v3) / 12.9 (issue 21)"
_UPSTREAM = "upstream 3.55 (NOTES v3) / 3.2 (issue 21)"
_UPSTREAM_DC = "upstream 6.2 (NOTES v3) / 5.7 (issue 21)"
_SAMPLER_CLAIM = "upstream issue #290: DPM-Solver++ 10 ~40 % faster than DDIM 20 (their GPU)"


@dataclass(frozen=True)
class RowSpec:
    key: str  # the row's key in the JSON
    name: str
    params: dict[str, Any]  # LipSyncParams fields
    first: bool  # empty the template cache first: a first request (else a repeat with new speech)
    earlier: str = ""  # figures of earlier runs (all H200), or ""
    sync: bool = True  # score the output with SyncNetV2 (the service's setting when its weights exist)
    plain: bool = False  # the eager reference pipeline (1 detection thread, no cache, no compile)


def rows(steps_override: int | None = None) -> list[RowSpec]:
    """The runs, most important first (a budget skips from the end). ``steps_override``
    (the CPU smoke mode) replaces every row's step count."""
    ddim = RECOMMENDED_STEPS["ddim"]
    fast_steps = RECOMMENDED_STEPS["dpmpp_2m"]

    def p(quality: str | None = None, **given: Any) -> dict[str, Any]:
        if steps_override is not None:
            given["inference_steps"] = steps_override
        return apply_quality(quality, given)

    specs = [
        RowSpec(
            "ddim20_first",
            f"exact: DDIM {ddim}, first request",
            p(inference_steps=ddim),
            True,
            f"{_OURS_FIRST}; {_UPSTREAM}",
        ),
        RowSpec(
            "ddim20_hit",
            f"exact: DDIM {ddim}, repeat (template hit, new speech)",
            p(inference_steps=ddim),
            False,
            f"{_OURS_HIT}; {_UPSTREAM}",
        ),
        RowSpec(
            "ddim20_dc_hit",
            f"DDIM {ddim} + DeepCache, repeat",
            p(inference_steps=ddim, enable_deepcache=True),
            False,
            f"{_OURS_DC_HIT}; {_UPSTREAM_DC}",
        ),
        RowSpec(
            "ddim20_dc_first",
            f"DDIM {ddim} + DeepCache, first request",
            p(inference_steps=ddim, enable_deepcache=True),
            True,
            f"{_OURS_DC_FIRST}; {_UPSTREAM_DC}",
        ),
        RowSpec("fast_first", "quality=fast, first request", p("fast"), True),
        RowSpec("fast_hit", "quality=fast, repeat", p("fast"), False),
        RowSpec(
            "dpmpp10_hit",
            f"dpmpp_2m {fast_steps}, repeat",
            p(sampler="dpmpp_2m", inference_steps=fast_steps),
            False,
            _SAMPLER_CLAIM,
        ),
        RowSpec("unipc10_hit", f"unipc {fast_steps}, repeat", p(sampler="unipc", inference_steps=fast_steps), False),
        RowSpec(
            "ddim20_hit_nosync",
            f"exact: DDIM {ddim}, repeat, sync score OFF",
            p(inference_steps=ddim),
            False,
            sync=False,
        ),
        RowSpec(
            "plain_first",
            f"plain path (eager, 1 detection thread, no cache), DDIM {ddim}",
            p(inference_steps=ddim),
            True,
            plain=True,
        ),
    ]
    if steps_override is not None:  # say what ran
        tag = f" [smoke: {steps_override} step{'s' if steps_override != 1 else ''}]"
        specs = [replace(spec, name=spec.name + tag) for spec in specs]
    return specs


def table(results: dict[str, dict], specs: list[RowSpec]) -> str:
    """Issue 21's table as Markdown: one line per run (skipped ones say why)."""
    head = (
        "| run | frames/s end to end | wall | first window denoised | sync score cost | stages (s) "
        "| UNet TFLOP/s | peak GPU | earlier runs, H200 (not this run) |"
    )
    lines = [head, "|" + "---|" * 9]
    for spec in specs:
        r = results.get(spec.key)
        if r is None:
            continue
        if "skipped" in r:
            lines.append(f"| {spec.name} | skipped: {r['skipped']} | | | | | | | {spec.earlier} |")
            continue
        t = r["timings"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "sync")
        sync = f"{t['sync']:.2f} s = {100 * r['sync_share']:.1f} % of wall" if "sync" in t else "off"
        first = f"{r['first_window_s']:.1f} s" if r.get("first_window_s") is not None else "n/a"
        peak = f"{r['peak_gb']:.1f} GB" if r.get("peak_gb") is not None else "n/a"
        tflops = f"{r['tflops']:.0f}" if r.get("tflops") is not None else "n/a"
        lines.append(
            f"| {spec.name} | **{r['fps']:.2f}** | {r['wall_s']:.1f} s ({r['frames']} frames) | {first} "
            f"| {sync} | {stages} | {tflops} | {peak} | {spec.earlier} |"
        )
    return "\n".join(lines)
