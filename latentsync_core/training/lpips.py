"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), the VGG16 variant with the learned linear heads (v0.1): stage 2's perceptual loss.

The distance of two images: both go through VGG16's convolutional trunk; at the five
ReLUs before each pooling (relu1_2 .. relu5_3) every feature vector is scaled to unit
length, the squared difference of the two images' vectors is weighted per channel by a
learned non-negative 1x1 conv ("lin" head), averaged over the positions, and the five
layers' values are summed.

Weights: one file, ``checkpoints/auxiliary/lpips_vgg16.pt`` (:data:`LPIPS_FILE`), a
``{"state_dict": ...}`` with torchvision's VGG16 ``features.{i}.weight/bias`` (the 13
convolutions; the classifier is dropped) and the ``lpips`` package's v0.1 heads
``lin{k}.model.1.weight`` under their original names. :func:`pack_lpips_weights` (also
``python -m latentsync_core.training.lpips VGG16 LIN OUT``) builds it from the two published
files; nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from latentsync_core.models.checkpoint import read_checkpoint
from latentsync_core.training.frozen import load_frozen, state_dict_of

LPIPS_FILE = "auxiliary/lpips_vgg16.pt"  # relative to the checkpoints folder
VGG16_WIDTHS = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = (2, 2, 3, 3, 3)
# The lpips package's input scaling (v0.1): [-1, 1] images to the ImageNet statistics VGG saw.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # the lpips package's guard in the unit-length scaling


def _vgg16_trunk(widths: Sequence[int]) -> tuple[nn.Sequential, list[int]]:
    """VGG16's ``features`` up to relu5_3, indexed as torchvision indexes it, and the
    indices of the five tapped ReLUs."""
    layers: list[nn.Module] = []
    taps: list[int] = []
    channels = 3
    for stage, (width, convs) in enumerate(zip(widths, _CONVS_PER_STAGE, strict=True)):
        if stage:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU()]
            channels = width
        taps.append(len(layers) - 1)
    return nn.Sequential(*layers), taps


class _LinearHead(nn.Module):
    """A 1x1 conv to one channel. Index 0 of ``model`` stands for the package's dropout,
    which is inactive in the eval mode LatentSync trains with; it keeps the key
    ``model.1.weight`` of the published heads."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_channels(x: torch.Tensor) -> torch.Tensor:
    # vector_norm's gradient is 0 (not NaN) at an all-zero feature vector, which ReLU makes common.
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + _EPS)


class LPIPSLoss(nn.Module):
    """``forward(x, y)`` on (N, 3, H, W) images in [-1, 1] -> the mean LPIPS distance (a scalar).

    ``widths`` are the five stages' channels: VGG16's by default; tests use narrow ones.
    The network is frozen; gradients reach the inputs.
    """

    def __init__(self, widths: Sequence[int] = VGG16_WIDTHS):
        super().__init__()
        if len(widths) != len(_CONVS_PER_STAGE):
            raise ValueError(f"LPIPS needs {len(_CONVS_PER_STAGE)} stage widths, got {list(widths)}")
        self.features, self._taps = _vgg16_trunk(widths)
        for k, width in enumerate(widths):
            self.add_module(f"lin{k}", _LinearHead(width))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path, widths: Sequence[int] = VGG16_WIDTHS) -> LPIPSLoss:
        """Strictly load :data:`LPIPS_FILE`'s format; a missing file or a wrong key set is a
        ``CodedError`` (``WEIGHTS_MISSING`` / ``WEIGHTS_INVALID``) naming the file and keys."""
        return load_frozen(lambda: cls(widths), path, "LPIPS (VGG16)")

    def _layer_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        shift = torch.tensor(_SHIFT, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        scale = torch.tensor(_SCALE, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        h = (images - shift) / scale
        out = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in self._taps:
                out.append(h)
        return out

    def distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distances (N,)."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS compares two (N, 3, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        dtype = self.lin0.model[1].weight.dtype
        n = x.shape[0]
        # One trunk pass over both batches.
        feats = self._layer_features(torch.cat([x, y]).to(dtype))
        total = x.new_zeros(n, dtype=dtype)
        for k, f in enumerate(feats):
            diff = (_unit_channels(f[:n]) - _unit_channels(f[n:])) ** 2
            total = total + getattr(self, f"lin{k}")(diff).mean(dim=(1, 2, 3))
        return total

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distances(x, y).float().mean()


def pack_lpips_weights(
    vgg16_path: str | Path, lin_path: str | Path, out_path: str | Path, widths: Sequence[int] = VGG16_WIDTHS
) -> Path:
    """Write :data:`LPIPS_FILE`'s format from torchvision's ``vgg16-397923af.pth`` and the
    ``lpips`` package's ``weights/v0.1/vgg.pth``; the result is checked by loading it."""
    vgg = state_dict_of(read_checkpoint(vgg16_path, "torchvision VGG16"), Path(vgg16_path))
    lin = state_dict_of(read_checkpoint(lin_path, "LPIPS heads"), Path(lin_path))
    packed = {k: v for k, v in vgg.items() if k.startswith("features.")}
    packed.update({k: v for k, v in lin.items() if k.startswith("lin")})
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": packed}, out_path)
    LPIPSLoss.from_file(out_path, widths)
    return out_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pack torchvision's VGG16 and lpips' v0.1 heads into one LPIPS file")
    parser.add_argument("vgg16", type=Path, help="torchvision vgg16-397923af.pth")
    parser.add_argument("lin", type=Path, help="the lpips package's weights/v0.1/vgg.pth")
    parser.add_argument("out", type=Path, help=f"output, normally checkpoints/{LPIPS_FILE}")
    args = parser.parse_args(argv)
    print(pack_lpips_weights(args.vgg16, args.lin, args.out))


if __name__ == "__main__":
    main()
