"""One progress bar per stage (tqdm), whose totals grow as items reach the stage: a source
only shows how many segments it has once its shots are known."""

from __future__ import annotations

import sys
from typing import Any

from latentsync_core.data.items import STAGES

UNITS = {1: "file", 2: "file", 3: "file", 4: "file", 5: "seg", 6: "seg", 7: "seg"}


class StageBars:
    def __init__(self, enabled: bool = True):
        self.done = dict.fromkeys(STAGES, 0)
        self.total = dict.fromkeys(STAGES, 0)
        self._bars: dict[int, Any] = {}
        if enabled:
            from tqdm import tqdm

            for position, (stage, name) in enumerate(STAGES.items()):
                self._bars[stage] = tqdm(
                    total=0, desc=f"{stage} {name:<8}", unit=UNITS[stage], position=position,
                    leave=True, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                )  # fmt: skip

    def grow(self, stage: int, count: int = 1) -> None:
        self.total[stage] += count
        self._refresh(stage)

    def advance(self, stage: int, count: int = 1) -> None:
        self.done[stage] += count
        self._refresh(stage)

    def _refresh(self, stage: int) -> None:
        bar = self._bars.get(stage)
        if bar is not None:
            bar.total = max(self.total[stage], self.done[stage])
            bar.n = self.done[stage]
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
