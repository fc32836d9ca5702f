"""Host memory of big frames (issue 22 item 5): a job holds a few windows of frames at once,
whatever the clip's resolution. One demo-mode job in a child process on the bundled clip
scaled to 1440x2560; its peak resident memory over what it had before may not pass the
working set of the same job on small frames (measured in the same child, on the warm-up
job) plus the frames ``FramePolicy`` says are held at once, and a tenth. (Before the rule:
1079 MiB for this clip's 27 frames of 10.5 MiB: every frame four times over, and the float
copy of a whole window for the face warp.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from latentsync_core.inference.memory import FramePolicy
from latentsync_core.inference.source import WINDOW
from scripts.bench_frame_memory import measure

WIDTH, HEIGHT = 1440, 2560  # 10.5 MiB a frame, 169 MiB a window: the big-frame rule applies


def test_big_frames_are_held_a_few_windows_at_a_time(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.getbasetemp() / "demo-weights-cache"
    r = measure(WIDTH, HEIGHT, 1.0, tmp_path, cache)
    policy = FramePolicy.for_frames(WIDTH, HEIGHT)
    assert (r["width"], r["height"]) == (WIDTH, HEIGHT) and r["frames"] > WINDOW  # two windows
    assert policy.windows_ahead == policy.windows_behind == 1 and policy.float_batch == 1
    # A tenth more for what is not frames' pixels: allocator rounding, page granularity.
    bound = int(1.1 * (r["small_job_bytes"] + policy.bound_bytes(r["frames"])))
    assert r["growth_bytes"] <= bound, (
        f"peak grew {r['growth_bytes'] / 2**20:.0f} MiB; bound {bound / 2**20:.0f} MiB"
        f" ({r['small_job_bytes'] / 2**20:.0f} MiB small job + {policy.held_frames(r['frames'])} frames)"
    )
