"""Rebuilds ``tests/data`` from the upstream reference vectors (``../shared/reference``).

Run once by a maintainer who has that folder: ``python -m tests.data.build_from_reference
PATH/TO/reference``. The tests never read the reference folder itself; README.md in this
folder says what each file holds and what was dropped or narrowed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from tests.reference_data import DATA, pack

# Intermediates of upstream's pipeline run that the end-to-end test compares.
E2E_KEEP = ("final_latents", "source_order", "changed_bbox", "matrices")


def build(reference: Path) -> None:
    DATA.mkdir(exist_ok=True)
    for name in ("stage2_512_manifest.json", "stable_syncnet_manifest.json"):
        shutil.copyfile(reference / name, DATA / name)
    pack(torch.load(reference / "unet_stage2_tiny.pt"), DATA / "unet_stage2_tiny.npz")
    pack(torch.load(reference / "whisper_tiny_a.pt"), DATA / "whisper_tiny_a.npz")
    # Also the Whisper of pipeline_e2e/weights (identical tensors, checked below).
    pack(torch.load(reference / "whisper_tiny_a_ckpt.pt"), DATA / "whisper_tiny_a_ckpt.npz")
    # The face given to restore() is an input; float16 moves it by < 0.07 grey levels.
    pack(torch.load(reference / "affine_512.pt"), DATA / "affine_512.npz", narrow={"generated_face": np.float16})

    e2e, out = reference / "pipeline_e2e", DATA / "pipeline_e2e"
    out.mkdir(exist_ok=True)
    whisper_a = torch.load(reference / "whisper_tiny_a_ckpt.pt")["model_state_dict"]
    whisper_e2e = torch.load(e2e / "weights" / "whisper" / "tiny.pt")["model_state_dict"]
    assert all(torch.equal(whisper_a[k], whisper_e2e[k]) for k in whisper_a), "pipeline Whisper differs"
    vae_dir = e2e / "weights" / "sd-vae-ft-mse"
    pack(
        {
            "unet": torch.load(e2e / "weights" / "latentsync_unet.pt"),
            "vae_state_dict": load_file(vae_dir / "diffusion_pytorch_model.safetensors"),
            "vae_config": json.loads((vae_dir / "config.json").read_text()),
            "unet_yaml": (e2e / "weights" / "unet_tiny.yaml").read_text(),
        },
        out / "weights.npz",
    )
    shutil.copyfile(e2e / "settings.json", out / "settings.json")
    shutil.copytree(e2e / "inputs", out / "inputs", dirs_exist_ok=True)
    for case in json.loads((e2e / "settings.json").read_text())["cases"]:
        with np.load(e2e / f"upstream_{case}.npz") as z:
            np.savez_compressed(out / f"upstream_{case}.npz", **{k: z[k] for k in E2E_KEEP})
        shutil.copyfile(e2e / f"upstream_{case}_frames.mkv", out / f"upstream_{case}_frames.mkv")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "reference")
