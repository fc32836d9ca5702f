"""How long a fresh process takes to reach full speed (GPU), with and without the
portable compile artifacts (``latentsync_core.inference.compile_cache``).

Three fresh processes, each with its own empty inductor cache folder (as a new container
or an autoscaled replica has), on random full-size weights (``bench_e2e.write_weights``):

1. cold: no artifacts; compiles from scratch and saves the artifacts;
2. artifacts: loads what (1) saved, then compiles (traces; kernels come from the artifacts);
3. (``--restart``) local restart: reuses (1)'s inductor cache folder, no artifacts (what a
   restart on the same machine gets without this feature).

Each reports the seconds from process start to "fast path ready" (imports, model load,
eager warm-up, compile) and the compiled UNet's time per full-window call, so "full
speed" is checked, not assumed.

    python -m scripts.bench_cold_start [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def phase(weights: Path, artifacts: Path, launched: float) -> dict:
    """Runs inside the child process: load, warm up, compile with ``artifacts``, time calls.
    ``launched``: the parent's clock (time.time) just before it started this process."""
    import torch

    import latentsync_core.models.loading
    from latentsync_core.inference import LipSyncPipeline
    from latentsync_core.inference.compile_cache import CompileArtifacts
    from latentsync_core.inference.runners import AccelOptions
    from latentsync_core.models.loading import load_models

    # The face detector plays no part in compiling; the GPU image lacks dlib's 100 MB model.
    latentsync_core.models.loading.make_face_detector = lambda *a, **k: None
    t_load = time.perf_counter()
    models = load_models("official", weights, weights / "cache", device="cuda")
    pipe = LipSyncPipeline(models, accel=AccelOptions.for_device(models.device))
    pipe.warmup()
    load_warm = time.perf_counter() - t_load
    compile_s = pipe.prepare_fast_path(CompileArtifacts(artifacts))
    ready = time.time() - launched  # interpreter start and imports included
    unet_shape, ctx_shape, _ = pipe._window_shapes()
    p = next(models.unet.parameters())
    x = torch.randn(unet_shape, device=p.device, dtype=p.dtype)
    ctx = torch.randn(ctx_shape, device=p.device, dtype=p.dtype)
    t = torch.tensor([500], device=p.device)
    with torch.no_grad():
        for _ in range(2):
            pipe.unet.full(x, t, ctx)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            pipe.unet.full(x, t, ctx)
        torch.cuda.synchronize()
    call_ms = (time.perf_counter() - start) / 5 * 1000
    return {"process_to_ready_s": ready, "load_warm_s": load_warm, "compile_s": compile_s,
            "artifacts": pipe.compile_artifacts, "unet_call_ms": call_ms}  # fmt: skip


def run_child(weights: Path, artifacts: Path, inductor: Path, out: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "scripts.bench_cold_start", "--child", str(weights), str(artifacts), str(out)]
    subprocess.run([*cmd, str(time.time())], cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights-dir", default="/tmp/latentsync-bench-weights")
    ap.add_argument("--work", default="/tmp/latentsync-cold")
    ap.add_argument("--json")
    ap.add_argument("--restart", action="store_true", help="also time a restart with a warm inductor cache")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        weights, artifacts, out = map(Path, args.child[:3])
        out.write_text(json.dumps(phase(weights, artifacts, float(args.child[3]))))
        return

    from scripts.bench_e2e import write_weights

    work, weights = Path(args.work), Path(args.weights_dir)
    work.mkdir(parents=True, exist_ok=True)
    write_weights(weights)
    artifacts = work / "artifacts"
    results = {
        "cold (no artifacts, empty inductor cache)": run_child(weights, artifacts, work / "ind1", work / "r1.json"),
        "fresh process + artifacts (empty inductor cache)": run_child(
            weights, artifacts, work / "ind2", work / "r2.json"
        ),
    }
    if args.restart:
        results["local restart (warm inductor cache, no artifacts)"] = run_child(
            weights, work / "none", work / "ind1", work / "r3.json"
        )
    size = sum(f.stat().st_size for f in artifacts.glob("*.bin")) / 1e6
    print(f"\nartifact files: {size:.1f} MB")
    print(f"{'case':52s} {'to ready':>9s} {'load+warm':>9s} {'compile':>8s} {'UNet call':>10s}  artifacts")
    for name, r in results.items():
        print(f"{name:52s} {r['process_to_ready_s']:8.1f}s {r['load_warm_s']:8.1f}s {r['compile_s']:7.1f}s "
              f"{r['unet_call_ms']:8.1f}ms  {r['artifacts']}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"artifact_mb": size, **results}, indent=2))


if __name__ == "__main__":
    main()
