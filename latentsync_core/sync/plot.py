"""A PNG of a sync report: confidence per second, the overall LSE-C, the offset.

Drawn on matplotlib's Agg canvas directly (no pyplot): no display, no global figure state,
safe from several threads of a service.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from latentsync_core.sync.video import SyncReport


def write_plot(report: SyncReport, path_png: str | Path) -> Path:
    """Bars of the confidence of each second of the video, a line at the overall LSE-C and a
    line at zero; the title gives the offset (frames and ms), LSE-C, LSE-D and the weights."""
    path = Path(path_png)
    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    seconds = [s for s, _ in report.per_second_confidence]
    conf = [c for _, c in report.per_second_confidence]
    colours = ["tab:blue" if c >= 0 else "tab:orange" for c in conf]
    ax.bar(seconds, conf, width=0.9, align="edge", color=colours, label="confidence of the second")
    ax.axhline(report.lse_c, color="tab:red", linestyle="--", linewidth=1.5, label=f"LSE-C {report.lse_c:.2f}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if seconds:
        ax.set_xlim(min(seconds) - 0.1, max(seconds) + 1.0)
    ax.set_xlabel("second of the video")
    ax.set_ylabel("median distance - distance")
    demo = " (random: the numbers say nothing about lip sync)" if report.weights == "demo" else ""
    ax.set_title(
        f"offset {report.offset_frames:+d} frames ({report.offset_ms:+d} ms), LSE-C {report.lse_c:.2f}, "
        f"LSE-D {report.lse_d:.2f}, {report.frames_scored} frames\nSyncNetV2 weights: {report.weights}{demo}",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
