"""``report.png``: per-video distributions of every metric, the models side by side (box
and the videos as points), the ground truth first in grey. Drawn on matplotlib's Agg
canvas directly (no pyplot: no display, no global state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from latentsync_core.evaluation.metrics import METRICS

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def write_distributions(report: dict[str, Any], path_png: str | Path) -> Path:
    path = Path(path_png)
    entries = report["models"]
    columns = 3
    rows = -(-(len(METRICS) + 1) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    colours = {}
    palette = iter(COLOURS * 4)
    for e in entries:
        colours[e["name"]] = "grey" if e["reference"] else next(palette)
    rng = np.random.default_rng(0)  # jitter of the points only
    for k, metric in enumerate(METRICS):
        ax = fig.add_subplot(rows, columns, k + 1)
        names = [e["name"] for e in entries]
        data = [list(report["per_video"][n][metric.name].values()) for n in names]
        for x, (name, values) in enumerate(zip(names, data, strict=True), start=1):
            if not values:
                ax.text(x, 0.5, "none", ha="center", va="center", transform=ax.get_xaxis_transform(), fontsize=8)
                continue
            ax.boxplot([values], positions=[x], widths=0.5, showfliers=False, medianprops={"color": "black"})
            jitter = rng.uniform(-0.12, 0.12, len(values))
            ax.scatter(x + jitter, values, s=14, color=colours[name], alpha=0.8, zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
        label = metric.label
        if metric.name == "quality":
            quality = sorted({e["quality_model"] for e in entries if e["quality_model"]})
            label += f" [{', '.join(quality)}]" if quality else ""
        ax.set_title(f"{label}\n({metric.better} is better)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax = fig.add_subplot(rows, columns, len(METRICS) + 1)
    generated = [e for e in entries if not e["reference"]]
    for x, e in enumerate(generated, start=1):
        f = e["fvd"]
        if f["value"] is None:
            ax.text(x, 0.5, "n/a", ha="center", va="center", transform=ax.get_xaxis_transform(), fontsize=8)
            continue
        ax.bar(x, f["value"], width=0.5, color=colours[e["name"]])
        if f["ci"]:
            below, above = max(f["value"] - f["ci"][0], 0.0), max(f["ci"][1] - f["value"], 0.0)
            ax.errorbar(x, f["value"], yerr=[[below], [above]], color="black", capsize=4)
    ax.set_xticks(range(1, len(generated) + 1), [e["name"] for e in generated], rotation=20, fontsize=8)
    ax.set_title("FVD vs the source videos, 95 % CI\n(lower is better)", fontsize=9)
    settings = report["settings"]
    demo = "  -  DEMO WEIGHTS: random networks, the numbers say nothing" if settings.get("weights") == "demo" else ""
    params = settings.get("params", {})
    fig.suptitle(
        f"per-video scores; seed {params.get('seed')}, {params.get('inference_steps')} steps, "
        f"guidance {params.get('guidance_scale')}{demo}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path)
    return path
