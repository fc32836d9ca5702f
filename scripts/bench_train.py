"""GPU memory and step time of UNet training (stage2_512 by default) at batch 1 under the
memory levers: fp32, bf16 autocast, fp16 with a grad scaler, gradient checkpointing of the
UNet and of the VAE decode (whole, or a few frames at a time), fewer frames.

Random full-size weights, built on the GPU: the SD VAE from its published configuration
(diffusers ``AutoencoderKL``), StableSyncNet from ``configs/syncnet``; no file is read and
nothing is downloaded. Each variant runs in its own process (an out-of-memory variant is
recorded as such and the others still run). Prints a table and writes JSON.

    python scripts/bench_train.py --output bench_train.json
    python scripts/bench_train.py --config configs/unet/stage1_512.yaml --variants bf16_ckpt

LPIPS and TREPA are included when ``--loss-networks`` is given and their modules exist
(random weights; their networks then add their own memory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> config overrides (on top of the chosen YAML) and the frames per window
VARIANTS: dict[str, dict] = {
    "fp32": {"run.mixed_precision_training": False, "run.enable_gradient_checkpointing": False,
             "run.vae_gradient_checkpointing": False},
    "bf16": {"run.mixed_precision_dtype": "bfloat16", "run.enable_gradient_checkpointing": False,
             "run.vae_gradient_checkpointing": False},
    "bf16_ckpt": {"run.mixed_precision_dtype": "bfloat16"},
    "bf16_ckpt_decode4": {"run.mixed_precision_dtype": "bfloat16", "run.vae_decode_chunk_frames": 4},
    "bf16_ckpt_decode1": {"run.mixed_precision_dtype": "bfloat16", "run.vae_decode_chunk_frames": 1},
    "fp16_scaler_ckpt_decode1": {"run.mixed_precision_dtype": "float16", "run.vae_decode_chunk_frames": 1},
    "bf16_ckpt_8frames": {"run.mixed_precision_dtype": "bfloat16", "data.num_frames": 8},
    "bf16_ckpt_5frames": {"run.mixed_precision_dtype": "bfloat16", "data.num_frames": 5},
}  # fmt: skip

SD_VAE = {  # stabilityai/sd-vae-ft-mse's config.json
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "act_fn": "silu", "sample_size": 256,
}  # fmt: skip


def run_variant(config: str, name: str, steps: int, loss_networks: bool, extra: list[str]) -> dict:
    import torch

    from latentsync_core.configs.syncnet import load_syncnet_config
    from latentsync_core.configs.unet import load_unet_config
    from latentsync_core.models.stable_syncnet import StableSyncNet
    from latentsync_core.models.unet import UNet3DConditionModel
    from latentsync_core.training.distributed import DistInfo
    from latentsync_core.training.unet_models import WeightSource
    from latentsync_core.training.unet_trainer import TrainOptions, UNetTrainer

    overrides = {"run.perceptual_loss_weight": 0, "run.trepa_loss_weight": 0, **VARIANTS[name]}
    if loss_networks:
        overrides.pop("run.perceptual_loss_weight"), overrides.pop("run.trepa_loss_weight")
    cfg = load_unet_config(config, [f"{k}={v}" for k, v in overrides.items()] + extra)
    if cfg.data.num_frames != 16:
        cfg.run.use_syncnet = False  # StableSyncNet reads 16-frame windows
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")  # the CPU: a smoke test of the script with a tiny config

    class RandomWeights(UNetTrainer):
        def load_unet(self):
            with torch.device(dev):
                return UNet3DConditionModel(self.cfg.model)

        def load_vae(self, dtype):
            from diffusers import AutoencoderKL

            with torch.device(dev):
                vae = AutoencoderKL(**SD_VAE).to(dtype)
            return vae.requires_grad_(False).eval()

        def load_syncnet(self, dtype):
            sync_cfg = load_syncnet_config(ROOT / self.cfg.data.syncnet_config_path)
            with torch.device(dev):
                net = StableSyncNet(sync_cfg.model).to(dtype)
            return net.requires_grad_(False), sync_cfg

    options = TrainOptions(Path("/nonexistent"), Path("/tmp/bench_train"), WeightSource("official", Path(".")))
    trainer = RandomWeights(cfg, options, DistInfo(0, 1, 0, dev))
    f, r = cfg.data.num_frames, cfg.data.resolution
    gen = torch.Generator().manual_seed(0)
    batch = {
        "gt": torch.rand(1, f, 3, r, r, generator=gen) * 2 - 1,
        "ref": torch.rand(1, f, 3, r, r, generator=gen) * 2 - 1,
        "audio": torch.randn(1, f, 50, cfg.model.cross_attention_dim, generator=gen),
        "mel": torch.randn(1, 1, 80, 52, generator=gen),
        "position": torch.tensor([0]),
    }
    trainable = sum(p.numel() for p in trainer.trainable)
    trainer.train_step(batch)  # warm-up: kernels, allocator, optimizer state
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        values = trainer.train_step(batch)
    if cuda:
        torch.cuda.synchronize()
    return {
        "variant": name, "status": "ok", "frames": f, "resolution": r,
        "seconds_per_step": (time.perf_counter() - start) / steps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan"),
        "trainable_params_m": trainable / 1e6, "losses": sorted(k for k in values if k not in ("loss", "grad_norm")),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "unet" / "stage2_512.yaml"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--output", default="bench_train.json")
    ap.add_argument("--loss-networks", action="store_true", help="include LPIPS and TREPA (random weights)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print its JSON
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_variant(args.config, args.one, args.steps, args.loss_networks, args.set)))
        return 0
    results = []
    for name in args.variants:
        cmd = [sys.executable, __file__, "--config", args.config, "--steps", str(args.steps), "--one", name]
        cmd += ["--loss-networks"] if args.loss_networks else []
        cmd += [f"--set={item}" for item in args.set]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line:
            results.append(json.loads(line[len("RESULT ") :]))
        else:
            oom = "OutOfMemoryError" in proc.stderr or "out of memory" in proc.stderr
            error = "out of memory" if oom else proc.stderr.strip().splitlines()[-1:] or ["failed"]
            results.append({"variant": name, "status": "oom" if oom else "error", "error": str(error)[:300]})
        _print_row(results[-1])
    Path(args.output).write_text(json.dumps({"config": args.config, "results": results}, indent=2))
    print(f"wrote {args.output}")
    return 0


def _print_row(r: dict) -> None:
    if r["status"] != "ok":
        print(f"{r['variant']:<26} {r['status']}: {r.get('error', '')}")
        return
    fits = "<24GB" if r["peak_gib"] < 24 else "<40GB" if r["peak_gib"] < 40 else ""
    print(f"{r['variant']:<26} {r['frames']:>2}f {r['resolution']}px  {r['peak_gib']:7.1f} GiB  "
          f"{r['seconds_per_step']:6.2f} s/step  {fits:<6} {','.join(r['losses'])}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
