"""One progress bar per stage (tqdm), whose totals grow as items reach the stage: a source
only shows how many segments it has once its shots are known."""

from __future__ import annotations

import sys
from typing import Any

from latentsync_core.data.items import Stage


def _unit(stage: Stage) -> str:
    return "file" if stage.on_source or stage is Stage.SEGMENT else "seg"


class StageBars:
    def __init__(self, enabled: bool = True):
        self.done = dict.fromkeys(Stage, 0)
        self.total = dict.fromkeys(Stage, 0)
        self._bars: dict[Stage, Any] = {}
        if enabled:
            from tqdm import tqdm

            for position, stage in enumerate(Stage):
                self._bars[stage] = tqdm(
                    total=0,
                    desc=f"{stage:d} {stage.label:<8}",
                    unit=_unit(stage),
                    position=position,
                    leave=True,
                    file=sys.stderr,
                    dynamic_ncols=True,
                    mininterval=0.5,
                )

    def grow(self, stage: Stage, count: int = 1) -> None:
        self.total[stage] += count
        self._refresh(stage)

    def advance(self, stage: Stage, count: int = 1) -> None:
        self.done[stage] += count
        self._refresh(stage)

    def _refresh(self, stage: Stage) -> None:
        bar = self._bars.get(stage)
        if bar is not None:
            bar.total = max(self.total[stage], self.done[stage])
            bar.n = self.done[stage]
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
