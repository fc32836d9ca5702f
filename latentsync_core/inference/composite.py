"""From denoised latents back to video frames: decode, paste the generated mouth region
under the original upper face, warp the face back into each frame that had one (a soft
eroded mask), and start the copy of the finished frames to the host."""

from __future__ import annotations

import numpy as np
import torch

from latentsync_core.inference.runners import VAERunner
from latentsync_core.inference.source import Window
from latentsync_core.vision.alignment import FaceAligner


class Compositor:
    def __init__(self, vae: VAERunner, mask: torch.Tensor, resolution: int, device: torch.device):
        self.vae, self.mask, self.device = vae, mask, device
        self.aligner = FaceAligner(resolution, device=device)

    def __call__(
        self, latents: torch.Tensor, window: Window, faces: torch.Tensor, frames: torch.Tensor
    ) -> torch.Tensor:
        """The window's output frames (count, H, W, 3) uint8 on the device; ``faces`` and
        ``frames`` are the window's aligned faces and source frames on the device."""
        decoded = self.vae.decode(latents[0].permute(1, 0, 2, 3)).float()
        combined = decoded * (1 - self.mask) + faces * self.mask  # generated mouth, original upper face
        return self.restore(frames, combined, window.matrices, window.has_face)

    def restore(
        self, frames: torch.Tensor, faces: torch.Tensor, mats: torch.Tensor, has_face: np.ndarray
    ) -> torch.Tensor:
        """Paste generated faces into the frames that had one (in place: a window's frames
        are its output buffer, ``memory.py``); others pass through unchanged."""
        out = frames
        chunk = len(frames) if self.device.type == "cuda" else 1  # bounded host memory on the CPU
        idx = np.flatnonzero(has_face)
        for s in range(0, len(idx), chunk):
            sel = torch.from_numpy(idx[s : s + chunk]).to(frames.device)
            out[sel] = self.aligner.restore_batch(frames[sel], faces[sel], mats[sel.cpu()]).to(out.device)
        return out


def to_host(frames: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start the copy of finished frames to the host; the writer waits for the event."""
    if frames.device.type != "cuda":
        return frames, None
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    host.copy_(frames, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done
