"""The official LatentSync 1.6 weight files: expected layout, checks and download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ID = "ByteDance/LatentSync-1.6"
VAE_REPO_ID = "stabilityai/sd-vae-ft-mse"
# The evaluation SyncNet (syncnet_python's weights) ships in the auxiliary folder of the
# earlier LatentSync release; StableSyncNet (training supervision) with 1.6.
AUXILIARY_REPO_ID = "ByteDance/LatentSync"
SYNCNET_FILES = ((REPO_ID, "stable_syncnet.pt"), (AUXILIARY_REPO_ID, "auxiliary/syncnet_v2.model"))
DOWNLOAD_HINT = "run `latentsync download-weights` (needs internet access)"


@dataclass(frozen=True)
class WeightPaths:
    unet: Path
    whisper: Path
    vae: Path
    auxiliary: Path | None

    @classmethod
    def under(cls, root: Path) -> WeightPaths:
        return cls(
            root / "latentsync_unet.pt", root / "whisper" / "tiny.pt", root / "sd-vae-ft-mse", root / "auxiliary"
        )


class MissingWeightsError(FileNotFoundError):
    pass


def check_official_weights(paths: WeightPaths) -> None:
    """Raise with the missing file's path and the command that fetches it."""
    required = [
        (paths.unet, "UNet checkpoint"),
        (paths.whisper, "Whisper tiny checkpoint"),
        (paths.vae / "config.json", "SD VAE config"),
    ]
    for path, what in required:
        if not path.is_file():
            raise MissingWeightsError(f"{what} not found: {path}; {DOWNLOAD_HINT}, or set LATENTSYNC_WEIGHTS=demo")
    if not any(
        (paths.vae / n).is_file() for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    ):
        raise MissingWeightsError(f"SD VAE weights not found in {paths.vae}; {DOWNLOAD_HINT}")


def download_official_weights(root: Path) -> WeightPaths:
    """Fetch the checkpoints into ``root`` with huggingface_hub (fails clearly offline)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    root.mkdir(parents=True, exist_ok=True)
    try:
        hf_hub_download(REPO_ID, "latentsync_unet.pt", local_dir=root)
        hf_hub_download(REPO_ID, "whisper/tiny.pt", local_dir=root)
        snapshot_download(
            VAE_REPO_ID, local_dir=root / "sd-vae-ft-mse", allow_patterns=["config.json", "*.safetensors"]
        )
        for repo, name in SYNCNET_FILES:  # sync scores of outputs, the data pipeline, training
            hf_hub_download(repo, name, local_dir=root)
    except Exception as exc:  # network, auth and hub errors all end the same way for the user
        raise RuntimeError(f"download failed ({type(exc).__name__}: {exc}); are you online?") from exc
    return WeightPaths.under(root)
