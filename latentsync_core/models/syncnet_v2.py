"""SyncNetV2: the evaluation SyncNet (syncnet_python layout) behind LSE-C / LSE-D.

A 3-D CNN embeds 5-frame 224 px BGR face clips (pixel values 0..255, not normalised) and
a 2-D CNN embeds 13x20 MFCC windows (0.2 s), both into 1024-d vectors whose Euclidean
distance is small when lips and speech agree. The layers live in ``nn.Sequential``
containers so that parameter names are the positional ones of ``syncnet_v2.model``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from latentsync_core.models.checkpoint import CheckpointError, load_strict, read_checkpoint

EMBED_DIM = 1024
CLIP_FRAMES = 5  # video frames per lip clip
MFCC_WINDOW = 20  # MFCC frames (100/s) per clip: 4 per video frame at 25 fps

# ("conv", out_channels, kernel, stride, padding) becomes conv + batch norm + ReLU;
# ("pool", kernel, stride, padding) a max pool. The order fixes the checkpoint indices.
_AUDIO_LAYERS = [
    ("conv", 64, (3, 3), (1, 1), (1, 1)),
    ("pool", (1, 1), (1, 1), 0),
    ("conv", 192, (3, 3), (1, 1), (1, 1)),
    ("pool", (3, 3), (1, 2), 0),
    ("conv", 384, (3, 3), (1, 1), (1, 1)),
    ("conv", 256, (3, 3), (1, 1), (1, 1)),
    ("conv", 256, (3, 3), (1, 1), (1, 1)),
    ("pool", (3, 3), (2, 2), 0),
    ("conv", 512, (5, 4), (1, 1), (0, 0)),
]
_LIP_LAYERS = [
    ("conv", 96, (5, 7, 7), (1, 2, 2), 0),
    ("pool", (1, 3, 3), (1, 2, 2), 0),
    ("conv", 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
    ("pool", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ("conv", 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
    ("conv", 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
    ("conv", 256, (1, 3, 3), (1, 1, 1), (0, 1, 1)),
    ("pool", (1, 3, 3), (1, 2, 2), 0),
    ("conv", 512, (1, 6, 6), (1, 1, 1), 0),
]


def _cnn(spec: list[tuple], in_channels: int, dims: int) -> nn.Sequential:
    conv, norm, pool = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
    )
    layers: list[nn.Module] = []
    channels = in_channels
    for kind, *args in spec:
        if kind == "conv":
            out, kernel, stride, padding = args
            layers += [conv(channels, out, kernel, stride=stride, padding=padding), norm(out), nn.ReLU()]
            channels = out
        else:
            kernel, stride, padding = args
            layers.append(pool(kernel, stride=stride, padding=padding))
    return nn.Sequential(*layers)


def _head(embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))


class SyncNetV2(nn.Module):
    """``forward_lip((B,3,5,224,224))`` and ``forward_aud((B,1,13,20))`` -> (B, 1024) each.

    Built in eval mode: batch norm uses the checkpoint's running statistics, so a clip's
    embedding does not depend on what else is in the batch.
    """

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        # Attribute order is the checkpoint's key order.
        self.netcnnaud = _cnn(_AUDIO_LAYERS, 1, dims=2)
        self.netfcaud = _head(embed_dim)
        self.netfclip = _head(embed_dim)
        self.netcnnlip = _cnn(_LIP_LAYERS, 3, dims=3)
        self.eval()

    def forward_aud(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def forward_lip(self, clips: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(clips).flatten(1))

    def lip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """The 512-d visual features before the projection head."""
        return self.netcnnlip(clips).flatten(1)


def load_syncnet_v2_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> SyncNetV2:
    """SyncNetV2 with the weights of one ``syncnet_v2.model`` file (a plain state dict), loaded
    strictly. By weights mode (official file or demo network): ``latentsync_core.sync.load_syncnet_v2``."""
    state_dict = read_checkpoint(path, "SyncNetV2")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} is not a state dict (got {type(state_dict).__name__})")
    model = SyncNetV2()
    load_strict(model, state_dict, str(path), "SyncNetV2 layout")
    return model.to(device=device, dtype=dtype).eval()
