"""Maintainer script: the TREPA / VideoMAE-v2 reference data of ``tests/test_loss_networks.py``.

Runs upstream's own code (a checkout of github.com/bytedance/LatentSync: its
``latentsync/trepa``) on the CPU in float32 and writes
``tests/data/videomae_vit_g_manifest.json`` (every key and shape of the full-size ViT-g/14
that upstream's TREPA loads) and ``tests/data/trepa_tiny_a.npz`` (a narrow random VideoMAE,
two videos, upstream's features and TREPA loss). Upstream's imports of packages this project
does not install (torchvision, decord, ...) are replaced by inert stand-ins; only the model
definition and the loss function run. Needs ``einops`` on the path.

    python -m scripts.make_trepa_reference /path/to/LatentSync
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TINY = {
    "img_size": 224,  # upstream's TREPA always resizes to 224
    "patch_size": 56,
    "num_frames": 16,
    "tubelet_size": 2,
    "embed_dim": 16,
    "depth": 2,
    "num_heads": 2,
    "mlp_hidden": 32,
    "num_classes": 3,
}


def _stub(name: str, **attrs: object) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _import_upstream(repo: Path) -> tuple[types.ModuleType, types.ModuleType]:
    sys.path.insert(0, str(repo))
    _stub("torchvision")
    _stub("torchvision.transforms", Compose=None)
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    _stub("latentsync.utils.util", check_model_and_download=lambda path: None)
    vit = importlib.import_module("latentsync.trepa.third_party.VideoMAEv2.videomaev2_finetune")
    loss = importlib.import_module("latentsync.trepa.loss")
    return vit, loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream", type=Path)
    args = parser.parse_args()
    vit, loss_mod = _import_upstream(args.upstream)

    linspace = torch.linspace  # upstream reads stochastic-depth rates with .item(): keep those on the CPU
    torch.linspace = lambda *a, **k: linspace(*a, **{**k, "device": "cpu"})
    try:
        with torch.device("meta"):
            full = vit.vit_giant_patch14_224(
                img_size=224, num_classes=174, all_frames=16, tubelet_size=2, use_mean_pooling=True
            )
    finally:
        torch.linspace = linspace
    manifest = {
        "origin": "upstream latentsync/trepa/third_party/VideoMAEv2: "
        "vit_giant_patch14_224(num_classes=174, all_frames=16)",
        "num_parameters": sum(p.numel() for p in full.parameters()),
        "state_dict": {k: list(v.shape) for k, v in full.state_dict().items()},
    }
    (ROOT / "tests/data/videomae_vit_g_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    torch.manual_seed(1247)
    tiny = vit.VisionTransformer(
        img_size=TINY["img_size"],
        patch_size=TINY["patch_size"],
        embed_dim=TINY["embed_dim"],
        depth=TINY["depth"],
        num_heads=TINY["num_heads"],
        mlp_ratio=TINY["mlp_hidden"] / TINY["embed_dim"],
        qkv_bias=True,
        norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6),
        num_classes=TINY["num_classes"],
        all_frames=TINY["num_frames"],
        tubelet_size=TINY["tubelet_size"],
        use_mean_pooling=True,
    ).eval()
    with torch.no_grad():  # non-trivial values everywhere (zero biases and unit norms otherwise)
        for p in tiny.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    fake = torch.rand(2, 3, 16, 32, 40) * 2 - 1
    real = (fake + 0.3 * torch.randn_like(fake)).clamp(-1, 1)
    trepa = object.__new__(loss_mod.TREPALoss)
    trepa.model = tiny
    with torch.no_grad():
        value = trepa(fake, real)
        clip = torch.nn.functional.interpolate(
            fake.permute(0, 2, 1, 3, 4).flatten(0, 1), size=(224, 224), mode="bicubic"
        )
        clip = (clip.view(2, 16, 3, 224, 224).permute(0, 2, 1, 3, 4) / 2 + 0.5).clamp(0, 1)
        features = tiny.forward_features(clip)
    from reference_data import pack

    pack(
        {
            "config": TINY,
            "state_dict": tiny.state_dict(),
            "fake": fake,
            "real": real,
            "fake_features": features,
            "loss": value,
        },
        ROOT / "tests/data/trepa_tiny_a.npz",
    )
    print("loss", float(value), "params", manifest["num_parameters"])


if __name__ == "__main__":
    main()
