"""FVD inputs: 16-frame face clips and their I3D features, as upstream's ``eval/eval_fvd.py``.

Upstream's protocol: frames 20-35 of each video (``vr[20:36]``), the detected face box cut
out of each frame (no margin) and resized to 224 x 224 with area interpolation, RGB scaled
to [0, 1], fed as (N, 3, 16, 224, 224) to the I3D TorchScript network of StyleGAN-V
(``checkpoints/auxiliary/i3d_torchscript.pt``) called with ``rescale=False, resize=False,
return_features=True``: 400-d features before the softmax. The Fréchet distance of the
generated set's features and the source set's is the FVD.

Our face box is the scored face track's (``sync/track.py``; upstream detects per frame
with MediaPipe). A video shorter than 36 frames takes its last 16 frames of the track
instead of frames 20-35 (the window used is recorded); a face track shorter than 16 frames
gives no clip.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.sync.track import Track

I3D_FILE = Path("auxiliary") / "i3d_torchscript.pt"
FVD_FIRST = 20  # upstream's first frame
FVD_FRAMES = 16  # frames 20..35
FVD_SIZE = 224
I3D_HINT = (
    "FVD needs StyleGAN-V's I3D TorchScript file (upstream's checkpoints/auxiliary/i3d_torchscript.pt); "
    "put it there, pass --i3d PATH, or run without FVD (--no-fvd)"
)


def fvd_window(track: Track) -> int | None:
    """First frame of the 16-frame FVD window inside ``track``: upstream's frame 20 when the
    track covers 20-35, else as near to it as the track allows; None if the track is shorter."""
    if track.length < FVD_FRAMES:
        return None
    return int(min(max(FVD_FIRST, track.first), track.last - FVD_FRAMES + 1))


def face_crop(frame_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face box cut out of the frame (clipped to it) and resized to 224 px (area)."""
    h, w = frame_rgb.shape[:2]
    # as upstream: integer corner and size, the corner clamped first, the size kept from there
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, x0 + int(box[2] - box[0])), min(h, y0 + int(box[3] - box[1]))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty face box {box} in a {w}x{h} frame")
    return cv2.resize(frame_rgb[y0:y1, x0:x1], (FVD_SIZE, FVD_SIZE), interpolation=cv2.INTER_AREA)


class I3DFeatures:
    """The I3D TorchScript network: ``features(clips)`` -> (N, D) float64 for (N, 16, 224, 224, 3)
    uint8 RGB face clips."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        self.path = Path(path)
        if not self.path.is_file():
            raise CodedError("MISSING_I3D", f"I3D network not found: {self.path}. {I3D_HINT}")
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # the published network is TorchScript: loading it is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            raise CodedError("INVALID_I3D", f"{self.path} is not a TorchScript file: {exc}") from exc

    @torch.no_grad()
    def features(self, clips: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device).float() / 255.0
        x = x.permute(0, 4, 1, 2, 3)  # (N, 3, F, H, W), the layout upstream feeds
        out = self.model(x, rescale=False, resize=False, return_features=True)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(clips):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CodedError("INVALID_I3D", f"{self.path} returned {shape}; expected ({len(clips)}, features)")
        return out.double().cpu().numpy()
