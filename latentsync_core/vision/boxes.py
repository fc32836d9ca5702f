"""Geometry of face boxes (x1, y1, x2, y2 in frame pixels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Intersection over union of two boxes (upstream's ``bounding_box_iou``)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_shift(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between the centres of ``a`` and ``b`` in units of ``a``'s larger side."""
    size = max(a[2] - a[0], a[3] - a[1], 1e-9)
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return float(np.hypot(dx, dy) / size)


def box_contains(box: Sequence[float], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]
