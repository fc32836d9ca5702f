"""Face alignment to the LatentSync template and the soft paste-back into the frame.

Three landmarks (left eyebrow centre, right eyebrow centre, nose centre) define a
similarity transform onto a fixed template; the translation is smoothed from frame to
frame so the crop does not jitter. Warps are bilinear samples of the source at the
inverse-mapped pixel centres (the convention of kornia's ``warp_affine`` with
``align_corners=True``, which the released model was trained with). All warps accept a
batch of frames and run on whatever device the tensors are on.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FILL_VALUE = 127.0  # grey outside the source image


def face_template(resolution: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Template points (3, 2) in crop pixels and the crop size (width, height)."""
    ratio = resolution / 256 * 2.8
    points = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]]) * ratio
    return points, (int(75 * ratio), int(100 * ratio))


def _invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (B, 2, 3) affine matrices."""
    a = m[:, :, :2]
    inv_a = torch.linalg.inv(a)
    return torch.cat([inv_a, -inv_a @ m[:, :, 2:]], dim=2)


def warp_affine(
    src: torch.Tensor,
    matrix: torch.Tensor,
    size: tuple[int, int],
    fill: float | None = None,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Warp (B, C, H, W) ``src`` by (B, 2, 3) ``matrix`` (src -> dst pixels) to ``size`` = (h, w).

    Outside the source, ``fill`` blends in a constant (None: zeros), weighted by how much
    of the bilinear footprint fell outside, as kornia's "fill" padding does. ``origin``
    (x, y) renders only the part of the destination starting there, with exactly the
    coordinates the whole destination would use.
    """
    b, _, h_src, w_src = src.shape
    h, w = size
    inv = _invert_affine(matrix.to(torch.float32))
    ys, xs = torch.meshgrid(
        torch.arange(origin[1], origin[1] + h, dtype=torch.float32, device=src.device),
        torch.arange(origin[0], origin[0] + w, dtype=torch.float32, device=src.device),
        indexing="ij",
    )
    ones = torch.ones_like(xs)
    dst = torch.stack([xs, ys, ones], dim=-1).reshape(1, h * w, 3)
    pts = dst @ inv.transpose(1, 2).to(src.device)  # (B, h*w, 2) source pixel coordinates
    grid = torch.stack(
        [pts[..., 0] * (2.0 / max(w_src - 1, 1)) - 1.0, pts[..., 1] * (2.0 / max(h_src - 1, 1)) - 1.0], dim=-1
    ).reshape(b, h, w, 2)
    out = F.grid_sample(src.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if fill is not None:
        inside = F.grid_sample(
            torch.ones((b, 1, h_src, w_src), device=src.device),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        out = out + (1.0 - inside) * fill
    return out


def similarity_from_points(points: np.ndarray, template: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity (Procrustes) mapping ``points`` onto ``template``.

    Returns the (2, 3) matrix and both point sets normalised (centred, divided by their std),
    which the translation smoothing uses.
    """
    p1 = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    p2 = torch.as_tensor(np.asarray(template), dtype=torch.float32)
    c1, c2 = p1.mean(dim=0), p2.mean(dim=0)
    s1, s2 = (p1 - c1).std(), (p2 - c2).std()
    n1, n2 = (p1 - c1) / s1, (p2 - c2) / s2
    u, _, v = torch.svd(n1.T @ n2)
    r = v @ u.T
    if torch.det(r) < 0:
        v[:, -1] = -v[:, -1]
        r = v @ u.T
    scale = s2 / s1
    t = c2.reshape(2, 1) - scale * (r @ c1.reshape(2, 1))
    return torch.cat([scale * r, t], dim=1), n1, n2


class FaceAligner:
    """Aligns faces to the template and restores generated faces into frames.

    One instance follows one video: the translation smoothing carries state from each
    ``align`` call to the next, in frame order: a new video needs a new aligner.
    """

    def __init__(self, resolution: int = 512, device: str | torch.device = "cpu"):
        self.resolution = resolution
        self.device = torch.device(device)
        self.template, (self.crop_w, self.crop_h) = face_template(resolution)
        self._bias: torch.Tensor | None = None

    def matrix(self, landmarks3: np.ndarray) -> np.ndarray:
        """(2, 3) float32 affine matrix for the next frame, advancing the smoothing state."""
        m, n1, n2 = similarity_from_points(landmarks3, self.template)
        bias = n2[2] - n1[2]  # offset of the nose point between the normalised shapes
        if self._bias is not None:
            bias = self._bias * 0.2 + bias * 0.8
        self._bias = bias
        m[:, 2] = m[:, 2] + bias
        return m.numpy()

    def warp_faces(self, frames: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 frames -> (B, crop_h, crop_w, 3) uint8 aligned crops."""
        src = frames.to(self.device).permute(0, 3, 1, 2).float()
        out = warp_affine(src, matrices.to(self.device), (self.crop_h, self.crop_w), fill=FILL_VALUE)
        return out.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # truncation, as upstream's astype

    def model_faces(self, frames: torch.Tensor, matrices: torch.Tensor) -> np.ndarray:
        """(B, H, W, 3) uint8 frames -> (B, r, r, 3) uint8 faces as the model sees them: the
        aligned crops resized to the resolution with LANCZOS4 (inference and training data
        alike)."""
        crops = self.warp_faces(frames, matrices).cpu().numpy()
        r = self.resolution
        return np.stack([cv2.resize(c, (r, r), interpolation=cv2.INTER_LANCZOS4) for c in crops])

    def align(self, image: np.ndarray, landmarks3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Aligned face crop (crop_h, crop_w, 3) uint8 and its (2, 3) matrix."""
        m = self.matrix(landmarks3)
        face = self.warp_faces(torch.from_numpy(np.ascontiguousarray(image))[None], torch.from_numpy(m)[None])
        return face[0].cpu().numpy(), m

    def restore_batch(
        self, frames: torch.Tensor, faces: torch.Tensor, matrices: torch.Tensor, crop: bool = True
    ) -> torch.Tensor:
        """Paste generated faces back: frames (B, H, W, 3) uint8, faces (B, 3, r, r) in [-1, 1],
        matrices (B, 2, 3) -> (B, H, W, 3) uint8.

        With ``crop`` the work is done only on the rectangle the faces land in (plus a
        margin wider than the blur), which gives the same pixels as the whole frame: the
        paste mask is exactly zero elsewhere.
        """
        frames = frames.to(self.device)
        inv = _invert_affine(matrices.to(self.device, torch.float32))
        if not crop:
            return self._restore_region(frames, faces, inv)
        x0, y0, x1, y1 = self._region(inv, frames.shape[2], frames.shape[1])
        out = frames.clone()
        out[:, y0:y1, x0:x1] = self._restore_region(frames[:, y0:y1, x0:x1], faces, inv, origin=(x0, y0))
        return out

    def _region(self, inv: torch.Tensor, width: int, height: int) -> tuple[int, int, int, int]:
        """Bounding rectangle of the pasted crops in the frame, with a margin."""
        cw, ch = self.crop_w - 1.0, self.crop_h - 1.0
        corners = torch.tensor([[0, 0, 1], [cw, 0, 1], [0, ch, 1], [cw, ch, 1]], dtype=torch.float32, device=inv.device)
        pts = (corners @ inv.transpose(1, 2)).reshape(-1, 2)
        lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
        margin = int(float((hi - lo).max()) / 20) + 4  # wider than the blur radius and the erosion
        x0 = max(0, int(np.floor(float(lo[0]))) - margin)
        y0 = max(0, int(np.floor(float(lo[1]))) - margin)
        x1 = min(width, int(np.ceil(float(hi[0]))) + margin + 1)
        y1 = min(height, int(np.ceil(float(hi[1]))) + margin + 1)
        if x1 <= x0 or y1 <= y0:  # the face lies outside the frame: nothing to paste
            return 0, 0, 0, 0
        return x0, y0, x1, y1

    def _restore_region(
        self, frames: torch.Tensor, faces: torch.Tensor, inv: torch.Tensor, origin: tuple[int, int] = (0, 0)
    ) -> torch.Tensor:
        b, h, w, _ = frames.shape
        if h == 0 or w == 0:
            return frames
        faces = faces.to(self.device, torch.float32)
        faces = F.interpolate(
            faces, size=(self.crop_h, self.crop_w), mode="bicubic", align_corners=False, antialias=True
        )
        inv_face = warp_affine(faces, inv, (h, w), fill=FILL_VALUE, origin=origin)
        inv_face = (inv_face / 2 + 0.5).clamp(0, 1) * 255
        ones = torch.ones((b, 1, self.crop_h, self.crop_w), device=self.device)
        mask = warp_affine(ones, inv, (h, w), origin=origin)
        mask = _erode_2x2(mask)
        pasted = mask * inv_face
        soft = torch.stack([_soft_edge(m) for m in mask[:, 0]]).to(self.device)[:, None]
        src = frames.permute(0, 3, 1, 2).float()
        out = soft * pasted + (1 - soft) * src
        return out.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # truncation, as upstream

    def restore(self, image: np.ndarray, face: torch.Tensor, matrix: np.ndarray) -> np.ndarray:
        """One frame: ``face`` (3, r, r) in [-1, 1] generated for the crop ``matrix`` came from."""
        out = self.restore_batch(
            torch.from_numpy(np.ascontiguousarray(image))[None],
            torch.as_tensor(face)[None],
            torch.as_tensor(np.asarray(matrix, dtype=np.float32)).reshape(1, 2, 3),
        )
        return out[0].cpu().numpy()


def _erode_2x2(mask: torch.Tensor) -> torch.Tensor:
    """Minimum over each pixel and its up/left neighbours (outside the image does not count)."""
    padded = F.pad(mask, (1, 0, 1, 0), value=float("inf"))
    return torch.minimum(
        torch.minimum(padded[..., 1:, 1:], padded[..., :-1, 1:]),
        torch.minimum(padded[..., 1:, :-1], padded[..., :-1, :-1]),
    )


def _soft_edge(mask: torch.Tensor) -> torch.Tensor:
    """Erode the face mask by ~1/10 of its size and blur it, for a seamless paste."""
    area = float(mask.sum())
    edge = int(area**0.5) // 20
    m = mask.detach().float().cpu().numpy()
    if edge == 0:
        return torch.from_numpy(m)
    radius = edge * 2
    centre = cv2.erode(m, np.ones((radius, radius), np.uint8))
    k = edge * 2 + 1
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    return torch.from_numpy(cv2.GaussianBlur(centre, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101))
