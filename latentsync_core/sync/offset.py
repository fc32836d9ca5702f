"""The audio-video offset search of SyncNet evaluation (syncnet_python's ``evaluate``).

For every video clip feature, distances to the audio features of the same frame and of
the ``vshift`` frames on each side (zero vectors past the ends) are taken; averaging over
the clips gives one mean distance per shift. The best shift is the offset, its mean
distance is LSE-D and the median minus it is LSE-C (confidence).

Sign: if the audio lags the video by ``d`` frames (audio feature ``t`` belongs with video
feature ``t - d``), the offset is ``-d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shift_distances(video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int = 15) -> torch.Tensor:
    """(N, 2*vshift+1) distances: row ``i``, column ``j`` compares video ``i`` with audio
    ``i + j - vshift``.

    Uses ``pairwise_distance`` (with its 1e-6 offset) as the original does, so LSE-D values
    agree to float rounding.
    """
    if video_feat.dim() != 2 or audio_feat.dim() != 2 or video_feat.shape[1] != audio_feat.shape[1]:
        raise ValueError(f"features must be (N, D) each, got {tuple(video_feat.shape)} and {tuple(audio_feat.shape)}")
    if len(audio_feat) < len(video_feat):
        raise ValueError(f"fewer audio features ({len(audio_feat)}) than video features ({len(video_feat)})")
    if vshift < 0:
        raise ValueError(f"vshift must be >= 0, got {vshift}")
    video = video_feat.float()
    padded = F.pad(audio_feat.float(), (0, 0, vshift, vshift))
    width = 2 * vshift + 1
    # windows[i] = padded[i : i + width]: (N, width, D) as a strided view, no copy
    windows = padded.unfold(0, width, 1)[: len(video)].transpose(1, 2)
    return F.pairwise_distance(video[:, None, :].expand_as(windows), windows, p=2.0)


def search_offset(dists: torch.Tensor, vshift: int) -> tuple[int, float, float, torch.Tensor]:
    """(offset, min_dist, conf, mean_dists) of a :func:`shift_distances` table."""
    mean_dists = dists.mean(dim=0)
    min_dist, best = torch.min(mean_dists, dim=0)
    conf = torch.median(mean_dists) - min_dist
    return vshift - int(best), float(min_dist), float(conf), mean_dists


def offset_and_confidence(
    video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int = 15
) -> tuple[int, float, float]:
    """(offset in frames, min mean distance = LSE-D, median minus min = LSE-C)."""
    offset, min_dist, conf, _ = search_offset(shift_distances(video_feat, audio_feat, vshift), vshift)
    return offset, min_dist, conf
