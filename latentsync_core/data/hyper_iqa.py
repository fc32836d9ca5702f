"""HyperIQA (Su et al., CVPR 2020), the blind image-quality model upstream's visual-quality
filter uses with ``koniq_pretrained.pkl`` (KonIQ-10k, scores 0-100).

A ResNet-50 extracts multi-scale features; a hyper network turns the last feature map into
the weights of a small per-image "target" network that maps the multi-scale vector to a
score. The ResNet-50 is built here (torchvision is not a dependency) with the parameter
names of upstream's ``eval/hyper_iqa.py``, so the checkpoint loads strictly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.models.checkpoint import CheckpointError, load_strict, read_checkpoint

# Upstream's HyperNet(16, 112, 224, 112, 56, 28, 14, 7).
LDA_OUT, HYPER_IN, TARGET_IN, FC_SIZES, FEATURE_SIZE = 16, 112, 224, (112, 56, 28, 14), 7
CROP = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """ResNet-50 block (1x1, strided 3x3, 1x1 with 4x expansion)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * 4:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _lda_pool(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, out, 1, bias=False), nn.AvgPool2d(7, stride=7))


class ResNetBackbone(nn.Module):
    """ResNet-50 with a "local distortion aware" projection after each stage: the pooled
    features of all four stages form the target network's input vector."""

    def __init__(self, lda_out: int = LDA_OUT, target_in: int = TARGET_IN):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 3, 1)
        self.layer2 = _layer(256, 128, 4, 2)
        self.layer3 = _layer(512, 256, 6, 2)
        self.layer4 = _layer(1024, 512, 3, 2)
        self.lda1_pool, self.lda1_fc = _lda_pool(256, 16), nn.Linear(16 * 64, lda_out)
        self.lda2_pool, self.lda2_fc = _lda_pool(512, 32), nn.Linear(32 * 16, lda_out)
        self.lda3_pool, self.lda3_fc = _lda_pool(1024, 64), nn.Linear(64 * 4, lda_out)
        self.lda4_pool, self.lda4_fc = nn.AvgPool2d(7, stride=7), nn.Linear(2048, target_in - lda_out * 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature map (B, 2048, 7, 7), target input vector (B, target_in))."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        v1 = self.lda1_fc(self.lda1_pool(x).flatten(1))
        x = self.layer2(x)
        v2 = self.lda2_fc(self.lda2_pool(x).flatten(1))
        x = self.layer3(x)
        v3 = self.lda3_fc(self.lda3_pool(x).flatten(1))
        x = self.layer4(x)
        v4 = self.lda4_fc(self.lda4_pool(x).flatten(1))
        return x, torch.cat([v1, v2, v3, v4], dim=1)


class HyperIQA(nn.Module):
    """``forward((B, 3, 224, 224) normalised RGB) -> (B,)`` quality scores."""

    def __init__(self) -> None:
        super().__init__()
        f1, f2, f3, f4 = FC_SIZES
        area = FEATURE_SIZE**2
        self.res = ResNetBackbone()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv1 = nn.Sequential(
            nn.Conv2d(2048, 1024, 1),
            nn.ReLU(),
            nn.Conv2d(1024, 512, 1),
            nn.ReLU(),
            nn.Conv2d(512, HYPER_IN, 1),
            nn.ReLU(),
        )
        # Convolutions make each target layer's weights, linear layers its biases.
        self.fc1w_conv = nn.Conv2d(HYPER_IN, TARGET_IN * f1 // area, 3, padding=1)
        self.fc1b_fc = nn.Linear(HYPER_IN, f1)
        self.fc2w_conv = nn.Conv2d(HYPER_IN, f1 * f2 // area, 3, padding=1)
        self.fc2b_fc = nn.Linear(HYPER_IN, f2)
        self.fc3w_conv = nn.Conv2d(HYPER_IN, f2 * f3 // area, 3, padding=1)
        self.fc3b_fc = nn.Linear(HYPER_IN, f3)
        self.fc4w_conv = nn.Conv2d(HYPER_IN, f3 * f4 // area, 3, padding=1)
        self.fc4b_fc = nn.Linear(HYPER_IN, f4)
        self.fc5w_fc = nn.Linear(HYPER_IN, f4)
        self.fc5b_fc = nn.Linear(HYPER_IN, 1)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4 = FC_SIZES
        b = images.shape[0]
        feat, vec = self.res(images)
        hyper = self.conv1(feat)  # (B, 112, 7, 7)
        pooled = self.pool(hyper).flatten(1)
        layers = [
            (self.fc1w_conv(hyper).reshape(b, f1, TARGET_IN), self.fc1b_fc(pooled)),
            (self.fc2w_conv(hyper).reshape(b, f2, f1), self.fc2b_fc(pooled)),
            (self.fc3w_conv(hyper).reshape(b, f3, f2), self.fc3b_fc(pooled)),
            (self.fc4w_conv(hyper).reshape(b, f4, f3), self.fc4b_fc(pooled)),
        ]
        x = vec
        for weight, bias in layers:  # the per-image target network: four sigmoid layers ...
            x = torch.sigmoid(torch.einsum("boi,bi->bo", weight, x) + bias)
        w5 = self.fc5w_fc(pooled).reshape(b, 1, f4)  # ... and a linear output
        return torch.einsum("boi,bi->bo", w5, x)[:, 0] + self.fc5b_fc(pooled)[:, 0]


def preprocess(frames_rgb: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, 224, 224): centre crop and ImageNet normalisation, as
    upstream's filter does (no resize: at 256 px the crop is the middle of the face)."""
    x = torch.from_numpy(np.ascontiguousarray(frames_rgb)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    if h < CROP or w < CROP:
        x = F.interpolate(x, size=(max(h, CROP), max(w, CROP)), mode="bilinear", align_corners=False)
        h, w = x.shape[-2:]
    top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
    x = x[:, :, top : top + CROP, left : left + CROP]
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_hyper_iqa(path: str | Path, device: str | torch.device = "cpu") -> HyperIQA:
    """HyperIQA with the weights of ``koniq_pretrained.pkl`` (a state dict), loaded strictly.
    Only BatchNorm step counters may be absent (older PyTorch did not save them; they do
    not affect inference)."""
    state = read_checkpoint(path, "HyperIQA")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a state dict (got {type(state).__name__})")
    model = HyperIQA()
    state = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    load_strict(model, state, str(path), "HyperIQA layout")
    return model.to(device).eval()
