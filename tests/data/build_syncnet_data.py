"""Rebuilds the SyncNet vectors of ``tests/data`` from ``../shared/reference``.

Run once by a maintainer who has that folder: ``python -m tests.data.build_syncnet_data
PATH/TO/reference``. The tests never read the reference folder; README.md in this
folder says what each file holds and what was dropped or narrowed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.reference_data import DATA, pack

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
FIRST_SAMPLE_ONLY = {"image", "audio", "vision_embeds", "audio_embeds", "cosine", "lip", "aud", "lip_embed", "aud_embed"}


def _keep(ref: dict, keys: tuple[str, ...]) -> dict:
    return {k: ref[k][:1] if k in FIRST_SAMPLE_ONLY else ref[k] for k in keys}


def build(reference: Path) -> None:
    DATA.mkdir(exist_ok=True)
    pack(_keep(torch.load(reference / "syncnet_stable_a.pt"), STABLE_KEEP), DATA / "syncnet_stable_a.npz")
    pack(_keep(torch.load(reference / "syncnet_v2_a.pt"), V2_KEEP), DATA / "syncnet_v2_a.npz")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "reference")
