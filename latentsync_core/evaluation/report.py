"""``eval report DIR``: per model (and the ground truth, when the set has own-audio tests) the
mean, median and 10th percentile of every per-video metric with bootstrap 95 % intervals,
the FVD of each model's outputs against the source videos, and every pair of models
compared over the videos both scored (paired test). Written as ``report.txt``,
``report.json``, ``report.csv`` and ``report.png`` (``plot.py``) in DIR.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from latentsync_core.common.errors import CodedError
from latentsync_core.evaluation.frechet import feature_distance
from latentsync_core.evaluation.metrics import METRICS
from latentsync_core.evaluation.plot import write_distributions
from latentsync_core.evaluation.stats import SEED, paired_difference, summarize
from latentsync_core.evaluation.store import DB_NAME, GROUND_TRUTH, ResultRow, ResultsStore

FVD_BOOTSTRAP = 200  # each resample is two 400 x 400 eigendecompositions


def per_video(rows: list[ResultRow], metric: str) -> dict[str, float]:
    """test -> value of the finished rows that have one."""
    out = {}
    for row in rows:
        source = "offset" if metric == "abs_offset" else metric
        value = row.metrics.get(source)
        if row.status == "done" and value is not None:
            out[row.test] = abs(value) if metric == "abs_offset" else float(value)
    return out


def fvd(rows: list[ResultRow], sources: dict[str, np.ndarray]) -> dict[str, Any]:
    """FVD of the rows' clips against their source videos' clips, with a bootstrap interval
    over the tests (each resample keeps every generated clip with its own source)."""
    pairs = [(r.features, sources[r.video]) for r in rows if r.features is not None and r.video in sources]
    if len(pairs) < 2:
        return {"n": len(pairs), "value": None, "ci": None}
    fake = np.stack([p[0] for p in pairs])
    real = np.stack([p[1] for p in pairs])
    ci = _fvd_interval(lambda i: feature_distance(fake[i], real[i]), len(pairs))
    return {"n": len(pairs), "value": feature_distance(fake, real), "ci": ci}


def _fvd_interval(statistic: Callable[[np.ndarray], float], n: int) -> list[float] | None:
    """Percentile bootstrap 95 % interval of a set statistic over resampled test indices
    (draws of a single distinct test have no covariance and are skipped)."""
    rng = np.random.default_rng(SEED)
    draws = (rng.integers(0, n, n) for _ in range(FVD_BOOTSTRAP))
    boot = [statistic(i) for i in draws if len(np.unique(i)) > 1]
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else None


def _fvd_difference(rows_a: list[ResultRow], rows_b: list[ResultRow], sources: dict[str, np.ndarray]) -> dict[str, Any]:
    """FVD(B) - FVD(A) over the tests both have clips for, with a paired bootstrap interval."""
    by_test_a = {r.test: r for r in rows_a if r.features is not None and r.video in sources}
    by_test_b = {r.test: r for r in rows_b if r.features is not None and r.video in sources}
    common = sorted(by_test_a.keys() & by_test_b.keys())
    if len(common) < 2:
        return {"n": len(common), "diff": None, "ci": None}
    real = np.stack([sources[by_test_a[t].video] for t in common])
    fa = np.stack([by_test_a[t].features for t in common])
    fb = np.stack([by_test_b[t].features for t in common])

    def statistic(i: np.ndarray) -> float:
        return feature_distance(fb[i], real[i]) - feature_distance(fa[i], real[i])

    everything = np.arange(len(common))
    return {"n": len(common), "diff": statistic(everything), "ci": _fvd_interval(statistic, len(common))}


def build_report(folder: str | Path) -> dict[str, Any]:
    """The report of ``folder``'s results. Raises :class:`CodedError` ``NO_RESULTS``."""
    path = Path(folder) / DB_NAME
    if not path.is_file():
        raise CodedError("NO_RESULTS", f"no {DB_NAME} in {folder} (run `latentsync eval run --output {folder}` first)")
    store = ResultsStore(folder)
    try:
        settings = store.settings()
        models = store.models()
        rows = {name: store.rows(name) for name, _ in models}
        truth = store.rows(GROUND_TRUTH)
        sources = store.source_features()
    finally:
        store.close()
    if not any(rows.values()):
        raise CodedError("NO_RESULTS", f"{path} holds no results yet")
    entries = [(GROUND_TRUTH, "source videos with their own speech", truth)] if truth else []
    entries += [(name, unet, rows[name]) for name, unet in models]
    report: dict[str, Any] = {
        "settings": settings,
        "metrics": [{"name": m.name, "label": m.label, "better": m.better} for m in METRICS]
        + [{"name": "fvd", "label": "FVD (I3D, face clips)", "better": "lower"}],
        "models": [],
        "comparisons": [],
        "per_video": {},
    }
    for name, unet, model_rows in entries:
        quality_models = sorted({r.quality_model for r in model_rows if r.quality_model})
        summary = {m.name: summarize(list(per_video(model_rows, m.name).values())) for m in METRICS}
        fvd_entry = fvd(model_rows, sources) if name != GROUND_TRUTH else {"n": 0, "value": None, "ci": None}
        report["models"].append(
            {
                "name": name,
                "unet": unet,
                "reference": name == GROUND_TRUTH,
                "tests": len(model_rows),
                "failed": [{"test": r.test, "error": r.error} for r in model_rows if r.status != "done"],
                "quality_model": ", ".join(quality_models) or None,
                "metrics": summary,
                "fvd": fvd_entry,
            }
        )
        report["per_video"][name] = {m.name: per_video(model_rows, m.name) for m in METRICS}
    names = [name for name, _ in models]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            report["comparisons"].append(_compare(a, b, report["per_video"], rows, sources))
    return report


def _compare(
    a: str,
    b: str,
    values: dict[str, dict[str, dict[str, float]]],
    rows: dict[str, list[ResultRow]],
    sources: dict[str, np.ndarray],
) -> dict[str, Any]:
    out: dict[str, Any] = {"a": a, "b": b, "metrics": {}}
    for m in METRICS:
        va, vb = values[a][m.name], values[b][m.name]
        common = sorted(va.keys() & vb.keys())
        out["metrics"][m.name] = paired_difference(np.array([va[t] for t in common]), np.array([vb[t] for t in common]))
    out["fvd"] = _fvd_difference(rows[a], rows[b], sources)
    return out


def compare_pair(folder: str | Path, a: str, b: str) -> dict[str, Any]:
    """The comparison of models ``a`` and ``b`` (any order, a model with itself included)."""
    store = ResultsStore(folder)
    try:
        rows = {a: store.rows(a), b: store.rows(b)}
        sources = store.source_features()
    finally:
        store.close()
    values = {name: {m.name: per_video(r, m.name) for m in METRICS} for name, r in rows.items()}
    return _compare(a, b, values, rows, sources)


# -- writing ---------------------------------------------------------------------------------


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def _p(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def format_text(report: dict[str, Any]) -> str:
    lines = []
    params = report["settings"].get("params", {})
    lines.append(
        f"weights {report['settings'].get('weights')}; seed {params.get('seed')}, {params.get('inference_steps')} "
        f"steps, guidance {params.get('guidance_scale')}; intervals: bootstrap 95 %"
    )
    if report["settings"].get("weights") == "demo":
        lines.append("NOTE: demo weights (random networks): these numbers say nothing about lip sync")
    width = max(len(m["name"]) for m in report["models"]) + 2
    for m in METRICS:
        quality = {e["quality_model"] for e in report["models"] if e["quality_model"]}
        label = m.label + (f" [{', '.join(sorted(quality))}]" if m.name == "quality" and quality else "")
        lines += ["", f"{label} ({m.better} is better)"]
        lines.append(f"{'model':<{width}}{'n':>4}  {'mean [95% CI]':<28}{'median [95% CI]':<28}{'p10 [95% CI]':<28}")
        for e in report["models"]:
            s = e["metrics"][m.name]
            cells = "".join(f"{_fmt(s[k], s[k + '_ci']):<28}" for k in ("mean", "median", "p10"))
            lines.append(f"{e['name']:<{width}}{s['n']:>4}  {cells}")
    lines += ["", "FVD against the source videos (lower is better)"]
    for e in report["models"]:
        if not e["reference"]:
            lines.append(f"{e['name']:<{width}}{e['fvd']['n']:>4}  {_fmt(e['fvd']['value'], e['fvd']['ci'])}")
    for c in report["comparisons"]:
        lines += ["", f"{c['b']} - {c['a']} (paired over the same videos; sign-flip test)"]
        for m in METRICS:
            d = c["metrics"][m.name]
            diff = _fmt(d["mean_diff"], d["mean_diff_ci"])
            lines.append(f"  {m.label:<28}n {d['n']:>3}  {diff:<30} p {_p(d['p_value'])}")
        f = c["fvd"]
        lines.append(f"  {'FVD':<28}n {f['n']:>3}  {_fmt(f['diff'], f['ci']):<30} (bootstrap interval only)")
    for e in report["models"]:
        for failure in e["failed"]:
            lines.append(f"FAILED {e['name']} {failure['test']}: {failure['error']}")
    return "\n".join(lines) + "\n"


def _csv_row(
    kind: str,
    model: str,
    versus: str,
    metric: str,
    n: int,
    statistic: str,
    value: float | None,
    ci: list[float] | None,
    p_value: float | str = "",
) -> dict[str, Any]:
    low, high = ci if ci else (None, None)
    return {
        "kind": kind,
        "model": model,
        "versus": versus,
        "metric": metric,
        "n": n,
        "statistic": statistic,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
    }


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Long format: one row per (model, metric, statistic) and per (comparison, metric)."""
    out = []
    for e in report["models"]:
        for m in METRICS:
            s = e["metrics"][m.name]
            for k in ("mean", "median", "p10"):
                out.append(_csv_row("summary", e["name"], "", m.name, s["n"], k, s[k], s[f"{k}_ci"]))
        if not e["reference"]:
            f = e["fvd"]
            out.append(_csv_row("summary", e["name"], "", "fvd", f["n"], "set", f["value"], f["ci"]))
    for c in report["comparisons"]:
        for m in METRICS:
            d = c["metrics"][m.name]
            row = _csv_row("difference", c["b"], c["a"], m.name, d["n"], "mean_diff", d["mean_diff"], d["mean_diff_ci"])
            row["p_value"] = d["p_value"]
            out.append(row)
        f = c["fvd"]
        out.append(_csv_row("difference", c["b"], c["a"], "fvd", f["n"], "diff", f["diff"], f["ci"]))
    return out


def write_report(folder: str | Path) -> dict[str, Path]:
    """Build the report of ``folder`` and write its four files there; returns their paths."""
    folder = Path(folder)
    report = build_report(folder)
    paths = {k: folder / f"report.{k}" for k in ("txt", "json", "csv", "png")}
    paths["txt"].write_text(format_text(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report, indent=2), encoding="utf-8")
    rows = csv_rows(report)
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_distributions(report, paths["png"])
    return paths
