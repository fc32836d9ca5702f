"""Rebuilds ``tests/data`` from the upstream reference vectors (the project's shared
reference folder, which a clone does not have).

Run by a maintainer who has that folder: ``python -m scripts.build_test_data PATH/TO/reference``.
The tests never read the reference folder itself; ``tests/data/README.md`` says what each file
holds and what was dropped or narrowed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from tests.reference_data import DATA, pack

# Intermediates of upstream's pipeline run that the end-to-end test compares; case a also
# keeps the UNet's first call (input, timestep, audio context, output): the UNet parity vector.
E2E_KEEP = ("final_latents", "source_order", "changed_bbox", "matrices")
UNET_STEP0 = ("unet_in0", "unet_t0", "unet_ctx0", "unet_out0")
# Case c (two full windows, no tail) is left out: case a is the same two windows plus a
# 2-frame tail. With it the repository would not travel to the GPU machine (64 MiB).
E2E_CASES = ("a_32f_1p28s", "b_loop_1p0v_1p6a")
AFFINE_FACES = 3  # aligned faces kept (of 6): one warp function; all matrices are kept


def build(reference: Path) -> None:
    DATA.mkdir(exist_ok=True)
    for name in ("stage2_512_manifest.json", "stable_syncnet_manifest.json"):
        shutil.copyfile(reference / name, DATA / name)
    pack(torch.load(reference / "whisper_tiny_a.pt"), DATA / "whisper_tiny_a.npz")
    # Also the Whisper of pipeline_e2e/weights (identical tensors, checked below).
    pack(torch.load(reference / "whisper_tiny_a_ckpt.pt"), DATA / "whisper_tiny_a_ckpt.npz")
    # The face given to restore() is an input; float16 moves it by < 0.07 grey levels.
    affine = torch.load(reference / "affine_512.pt")
    affine["faces"] = affine["faces"][:AFFINE_FACES]
    pack(affine, DATA / "affine_512.npz", narrow={"generated_face": np.float16})

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
    settings = json.loads((e2e / "settings.json").read_text())
    settings["cases"] = {case: settings["cases"][case] for case in E2E_CASES}
    (out / "settings.json").write_text(json.dumps(settings, indent=1))
    (out / "inputs").mkdir(exist_ok=True)
    for case in E2E_CASES:
        spec = settings["cases"][case]
        for name in (spec["video"], spec["audio"]):
            shutil.copyfile(e2e / name, out / name)
        with np.load(e2e / f"upstream_{case}.npz") as z:
            keep = E2E_KEEP + (UNET_STEP0 if case == E2E_CASES[0] else ())
            np.savez_compressed(out / f"upstream_{case}.npz", **{k: z[k] for k in keep})
        # Re-encoded losslessly with FFV1's adaptive context model: the same pixels, 12 % smaller.
        run_ffmpeg(["-i", input_arg(e2e / f"upstream_{case}_frames.mkv"), "-c:v", "ffv1", "-level", "3",
                    "-context", "1", "-coder", "1", "-y", str(out / f"upstream_{case}_frames.mkv")])  # fmt: skip


# Everything the SyncNet tests read; the rest of each file is left out.
STABLE_KEEP = (
    "config",
    "state_dict",
    "image",  # already float16 in the reference (run as float32)
    "audio",
    "vision_embeds",
    "audio_embeds",
    "cosine",
    "mel",
    "window_starts",
    "mel_windows",
)
V2_KEEP = (
    "state_dict_packed",  # int8 codes + a scale per weight tensor, unpacked by the test fixture
    "lip",
    "aud",
    "lip_embed",
    "aud_embed",
    "mfcc",
    "frames_bgr",
    "vshift",
    "mean_dists",
    "offset",
    "min_dist",
    "conf",
    "shift_case",
)


# Network inputs and outputs of which only the first of the two samples is kept: the
# networks treat samples independently (eval mode), and the repository stays small enough
# to travel to the GPU machine (64 MiB).
FIRST_SAMPLE_ONLY = {
    "image",
    "audio",
    "vision_embeds",
    "audio_embeds",
    "cosine",
    "lip",
    "aud",
    "lip_embed",
    "aud_embed",
}


def _keep(ref: dict, keys: tuple[str, ...]) -> dict:
    return {k: ref[k][:1] if k in FIRST_SAMPLE_ONLY else ref[k] for k in keys}


def build_syncnet(reference: Path) -> None:
    pack(_keep(torch.load(reference / "syncnet_stable_a.pt"), STABLE_KEEP), DATA / "syncnet_stable_a.npz")
    pack(_keep(torch.load(reference / "syncnet_v2_a.pt"), V2_KEEP), DATA / "syncnet_v2_a.npz")


if __name__ == "__main__":
    source = Path(sys.argv[1])
    build(source)
    build_syncnet(source)
