"""The per-video metrics a report shows, with which direction is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    better: str  # "higher" or "lower"


METRICS = (
    Metric("lse_c", "LSE-C (sync confidence)", "higher"),
    Metric("lse_d", "LSE-D (sync distance)", "lower"),
    Metric("abs_offset", "|offset| (frames)", "lower"),
    Metric("face_fraction", "frames with a face", "higher"),
    Metric("quality", "visual quality", "higher"),
)
