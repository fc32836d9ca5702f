"""Shot changes of a video fed frame by frame (PySceneDetect's adaptive content detector on
a small copy of each frame, with the preprocessing's default thresholds), so a face track
never joins two shots."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from latentsync_core.media.constants import FPS


@dataclass(frozen=True)
class ShotSettings:
    threshold: float = 2.0  # adaptive ratio of a frame's change to its neighbours' (the data pipeline's)
    min_content: float = 15.0  # the least content change that can be a cut
    min_frames: int = 15  # the shortest shot
    width: int = 256  # frames are scaled to this width first (cuts are coarse; detection is cheap)


class ShotCutter:
    """``add(frame)`` for each frame in order, then ``finish()``: the first frame of every
    shot after the first (ascending frame numbers)."""

    def __init__(self, settings: ShotSettings | None = None, fps: float = FPS):
        from scenedetect import AdaptiveDetector  # the 0.7 API: time codes, not frame numbers

        self.settings = settings or ShotSettings()
        self.fps = fps
        s = self.settings
        self._detector = AdaptiveDetector(
            adaptive_threshold=s.threshold, min_scene_len=s.min_frames, min_content_val=s.min_content
        )
        self._cuts: list[int] = []
        self.frames = 0

    def _at(self, n: int) -> object:
        from scenedetect import FrameTimecode

        return FrameTimecode(n, fps=float(self.fps))

    def add(self, frame_rgb: np.ndarray) -> None:
        h, w = frame_rgb.shape[:2]
        scale = min(1.0, self.settings.width / w)
        small = cv2.resize(
            frame_rgb, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        found = self._detector.process_frame(self._at(self.frames), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        self._cuts += [c.frame_num for c in found]
        self.frames += 1

    def finish(self) -> list[int]:
        self._cuts += [c.frame_num for c in self._detector.post_process(self._at(self.frames))]
        return sorted(c for c in set(self._cuts) if 0 < c < self.frames)


def shot_bounds(cuts: list[int], frames: int) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the shots between ``cuts``."""
    bounds = [0, *cuts, frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
