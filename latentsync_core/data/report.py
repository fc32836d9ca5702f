"""The run report, built from the manifest (so it covers every run that filled the output
folder) plus this run's wall time: per stage the items in and out, the rejection reasons
with counts, worker time and throughput; written as JSON, as a funnel chart (PNG) and as
the table printed at the end."""

from __future__ import annotations

import json
import resource
import sys
from collections import Counter
from typing import Any

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Stage
from latentsync_core.data.layout import Layout
from latentsync_core.data.manifest import Manifest
from latentsync_core.media.constants import FPS
from latentsync_core.storage.atomic import writing

UNITS = {
    Stage.CHECK: "files",
    Stage.RESAMPLE: "files",
    Stage.SHOTS: "files",
    Stage.SEGMENT: "shots -> segments",
    Stage.ALIGN: "segments",
    Stage.SYNC: "segments",
    Stage.QUALITY: "segments",
}


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished child (Linux: KiB)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return {
        "coordinator_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1),
        "largest_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale, 1),
    }


def build_report(
    manifest: Manifest, cfg: PreprocessConfig, models: dict[str, str], run: dict[str, Any]
) -> dict[str, Any]:
    decisions = list(manifest.decisions().values())
    by_stage = {k: [r for r in decisions if r["stage"] == k] for k in Stage}
    passed = {k: sum(r["decision"] == "pass" for r in rows) for k, rows in by_stage.items()}
    sources = manifest.sources()
    shot_rows = by_stage[Stage.SHOTS]
    shots = sum(len(json.loads(r["measurements"]).get("shots", [])) for r in shot_rows if r["decision"] == "pass")
    # What enters a stage is what passed the one before; the segment stage takes shots.
    entering = {k: passed[Stage(k - 1)] for k in Stage if k > Stage.CHECK}
    entering[Stage.CHECK], entering[Stage.SEGMENT] = len(sources), shots
    processed = run.get("processed", {})
    segmented = sum(s["status"] == "segmented" for s in sources)
    stages = []
    for k in Stage:
        rows = by_stage[k]
        seconds = sum(r["seconds"] or 0.0 for r in rows)
        footage = sum(r["footage_s"] or 0.0 for r in rows)
        reasons = Counter(r["reason"] for r in rows if r["decision"] == "reject")
        stages.append(
            {
                "stage": int(k),
                "name": k.label,
                "unit": UNITS[k],
                "items_in": entering[k],
                "passed": passed[k],
                "rejected": len(rows) - passed[k],
                "pending": max(0, passed[Stage.SHOTS] - segmented if k is Stage.SEGMENT else entering[k] - len(rows)),
                "reasons": dict(reasons.most_common()),
                "worker_seconds": round(seconds, 3),
                "footage_seconds": round(footage, 3),
                "items_per_second": round(len(rows) / seconds, 3) if seconds > 0 else None,
                "footage_x_realtime": round(footage / seconds, 3) if seconds > 0 else None,
                "processed_this_run": int(processed.get(str(int(k)), 0)),
            }
        )
    clips = manifest.clips()
    kept = [c for c in clips if c["status"] == "kept"]
    input_s = sum(r["duration"] or 0.0 for r in sources)
    wall = float(run.get("wall_seconds", 0.0))
    run_footage = float(run.get("footage_seconds_this_run", 0.0))
    return {
        "weights": models["weights"],
        "quality_model": models["quality_model"],
        "face_detector": models["face_detector"],
        "config": cfg.to_dict(),
        "stages": stages,
        "totals": {
            "sources": len(sources),
            "sources_rejected": sum(s["status"] == "rejected" for s in sources),
            "input_footage_hours": round(input_s / 3600, 5),
            "clips": len(clips),
            "clips_kept": len(kept),
            "kept_footage_hours": round(sum(c["frames"] for c in kept) / FPS / 3600, 5),
            "train_clips": sum(c["split"] == "train" for c in kept),
            "val_clips": sum(c["split"] == "val" for c in kept),
        },
        "run": {
            **run,
            "footage_hours_per_hour": round(run_footage / wall, 3) if wall > 0 else None,
            "peak_memory": peak_memory_mb(),
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    lines = [
        f"weights: {report['weights']}   quality model: {report['quality_model']}   "
        f"face detector: {report['face_detector']}",
        f"{'stage':<12}{'in':>7}{'out':>7}{'rej':>6}{'pend':>6}{'this run':>9}{'worker s':>10}  rejection reasons",
    ]
    for s in report["stages"]:
        reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items()) or "-"
        lines.append(
            f"{s['stage']} {s['name']:<10}{s['items_in']:>7}{s['passed']:>7}{s['rejected']:>6}{s['pending']:>6}"
            f"{s['processed_this_run']:>9}{s['worker_seconds']:>10.1f}  {reasons}"
        )
    t, r = report["totals"], report["run"]
    lines.append(
        f"kept {t['clips_kept']} clips ({t['kept_footage_hours'] * 3600:.1f} s; train {t['train_clips']}, "
        f"val {t['val_clips']}) from {t['sources']} files ({t['input_footage_hours'] * 3600:.1f} s)"
    )
    rate = r.get("footage_hours_per_hour")
    memory = r["peak_memory"]
    wall = f"wall {r.get('wall_seconds', 0):.1f} s" + (f", {rate:.2f} h of footage per hour" if rate else "")
    lines.append(
        f"{wall}, peak memory {memory['coordinator_mb']:.0f} MB (coordinator), "
        f"{memory['largest_worker_mb']:.0f} MB (largest worker)"
    )
    return "\n".join(lines)


def write_report(report: dict[str, Any], layout: Layout) -> None:
    with writing(layout.report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    with writing(layout.report_png) as tmp:
        draw_funnel(report, tmp)


def draw_funnel(report: dict[str, Any], path: Any) -> None:
    """Items in and out per stage (with the rejection reasons) and worker time per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = report["stages"]
    labels = [f"{s['stage']} {s['name']}" for s in stages][::-1]
    fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 1.2]})
    y = range(len(stages))
    ax.barh(y, [s["items_in"] for s in stages][::-1], color="#c9d6e8", label="in")
    ax.barh(y, [s["passed"] for s in stages][::-1], color="#2f6db5", height=0.5, label="out")
    ax.set_yticks(list(y), labels)
    top = max([s["items_in"] for s in stages] + [1])
    for row, s in zip(y, stages[::-1], strict=True):
        reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items())
        ax.text(top * 1.02, row, f"{s['items_in']} -> {s['passed']}  {reasons}", va="center", fontsize=8)
    ax.set_xlim(0, top * 2.2)
    ax.set_xlabel("items (files for stages 1-3, shots -> segments at 4, segments after)")
    ax.legend(loc="lower right")
    ax.set_title(f"weights: {report['weights']}, quality: {report['quality_model']}")
    ax_t.barh(y, [s["worker_seconds"] for s in stages][::-1], color="#7a9e3b")
    ax_t.set_yticks(list(y), labels)
    ax_t.set_xlabel("worker seconds")
    rate = report["run"].get("footage_hours_per_hour")
    ax_t.set_title(f"{rate:.2f} h footage / h" if rate else "time per stage")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)
