"""The run's manifest: one SQLite file holding every source, every clip (a segment of a
source), every stage's decision with its reason and measurements, and the runs.

Only the coordinating process writes it, one transaction per decision, so a run killed
at any point leaves every recorded decision intact; what is recorded is what a resumed
run skips. The view ``clip_manifest`` gives one row per clip with its lineage, each
stage's decision and the headline measurements.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from latentsync_core.data.items import Outcome, Stage
from latentsync_core.data.stages.segment import Segment
from latentsync_core.media.constants import FPS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source_id TEXT PRIMARY KEY, rel_path TEXT NOT NULL, path TEXT NOT NULL, size INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',          -- pending | segmented | rejected
    stage INTEGER, reason TEXT, duration REAL, frames INTEGER
);
CREATE TABLE IF NOT EXISTS clips (
    clip_id TEXT PRIMARY KEY, source_id TEXT NOT NULL REFERENCES sources(source_id),
    shot INTEGER, segment INTEGER, start_frame INTEGER, frames INTEGER, start_s REAL, end_s REAL,
    status TEXT NOT NULL DEFAULT 'pending',          -- pending | kept | rejected
    stage INTEGER, reason TEXT,                      -- the last stage that decided, and why not kept
    "offset" INTEGER, confidence REAL, lse_d REAL, face_size REAL,
    quality_score REAL, quality_model TEXT, path TEXT, split TEXT
);
CREATE INDEX IF NOT EXISTS clips_by_source ON clips(source_id);
CREATE TABLE IF NOT EXISTS decisions (
    item_id TEXT NOT NULL, stage INTEGER NOT NULL, stage_name TEXT NOT NULL,
    decision TEXT NOT NULL,                          -- pass | reject
    reason TEXT NOT NULL DEFAULT '', measurements TEXT NOT NULL DEFAULT '{}',
    seconds REAL, footage_s REAL, run_id INTEGER, decided_at REAL,
    PRIMARY KEY (item_id, stage)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL, finished REAL, status TEXT,
    engine TEXT, workers INTEGER, devices TEXT, wall_s REAL, summary TEXT
);
"""


def _stage_column(stage: Stage) -> str:
    item = "c.source_id" if stage.on_source else "c.clip_id"
    return (
        f"(SELECT d.decision || CASE WHEN d.reason != '' THEN ':' || d.reason ELSE '' END FROM decisions d "
        f"WHERE d.item_id = {item} AND d.stage = {stage:d}) AS stage{stage:d}_{stage.label}"
    )


_VIEW = (
    "CREATE VIEW IF NOT EXISTS clip_manifest AS SELECT c.clip_id, s.rel_path AS source, s.path AS source_path, "
    'c.start_s, c.end_s, c.frames, c.status, c.stage, c.reason, c."offset", c.confidence, c.lse_d, c.face_size, '
    "c.quality_score, c.quality_model, c.path, c.split, "
    + ", ".join(_stage_column(stage) for stage in Stage)
    + " FROM clips c JOIN sources s ON s.source_id = c.source_id"
)

# Measurements copied to the clip's own columns, by stage.
_CLIP_COLUMNS = {
    Stage.ALIGN: ("face_size",),
    Stage.SYNC: ("offset", "confidence", "lse_d"),
    Stage.QUALITY: ("quality_score", "quality_model"),
}


class Manifest:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        self.db.executescript(_SCHEMA)
        self.db.execute(_VIEW)

    def close(self) -> None:
        self.db.close()

    def _tx(self, statements: Iterable[tuple[str, tuple]]) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                cur.execute(sql, params)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    # --- meta and runs -----------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, values: dict[str, str]) -> None:
        self._tx(("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, v)) for k, v in values.items())

    def start_run(self, engine: str, workers: int, devices: list[str]) -> int:
        cur = self.db.execute(
            "INSERT INTO runs(started, status, engine, workers, devices) VALUES (?, 'running', ?, ?, ?)",
            (time.time(), engine, workers, json.dumps(devices)),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, wall_s: float, summary: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished = ?, status = ?, wall_s = ?, summary = ? WHERE run_id = ?",
            (time.time(), status, wall_s, json.dumps(summary), run_id),
        )

    # --- writing ----------------------------------------------------------------------------
    def add_sources(self, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """(source_id, rel_path, absolute path, size); known sources are left as they are."""
        self._tx(
            ("INSERT OR IGNORE INTO sources(source_id, rel_path, path, size) VALUES (?, ?, ?, ?)", row) for row in rows
        )

    def _decision_sql(self, o: Outcome, run_id: int) -> tuple[str, tuple]:
        values = (
            o.item_id,
            int(o.stage),
            o.stage.label,
            "pass" if o.passed else "reject",
            o.reason,
            json.dumps(o.measurements, sort_keys=True),
            round(o.seconds, 4),
            round(o.footage_s, 3),
            run_id,
            time.time(),
        )
        return (
            "INSERT OR REPLACE INTO decisions(item_id, stage, stage_name, decision, reason, measurements, seconds,"
            " footage_s, run_id, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )

    def record(self, o: Outcome, run_id: int, clip_path: str = "") -> None:
        """One stage's decision on a source (check, resample, shots) or a clip (align, sync,
        quality), with the item's status."""
        statements = [self._decision_sql(o, run_id)]
        m = o.measurements
        if o.stage.on_source:
            if not o.passed:
                sql = "UPDATE sources SET status='rejected', stage=?, reason=? WHERE source_id=?"
                statements.append((sql, (int(o.stage), o.reason, o.item_id)))
            if o.stage is Stage.CHECK and "duration" in m:
                statements.append(("UPDATE sources SET duration=? WHERE source_id=?", (m["duration"], o.item_id)))
            if o.stage is Stage.SHOTS and "frames" in m:
                statements.append(("UPDATE sources SET frames=? WHERE source_id=?", (m["frames"], o.item_id)))
        else:
            status = "kept" if o.passed and o.stage is Stage.QUALITY else ("pending" if o.passed else "rejected")
            sets = ["status=?", "stage=?", "reason=?"]
            values: list[Any] = [status, int(o.stage), o.reason]
            for key in _CLIP_COLUMNS.get(o.stage, ()):
                if key in m:
                    sets.append(f'"{key}"=?')
                    values.append(m[key])
            if status == "kept":
                sets.append("path=?")
                values.append(clip_path)
            statements.append((f"UPDATE clips SET {', '.join(sets)} WHERE clip_id=?", (*values, o.item_id)))
        self._tx(statements)

    def add_segments(self, src_id: str, segments: list[Segment], run_id: int) -> None:
        """The segment stage for a whole source, in one transaction: its clips and their decisions."""
        insert = (
            "INSERT OR REPLACE INTO clips(clip_id, source_id, shot, segment, start_frame, frames, start_s, end_s,"
            " status, stage, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        stage = Stage.SEGMENT
        statements: list[tuple[str, tuple]] = []
        for s in segments:
            status, reason = ("pending", "") if s.kept else ("rejected", "too_short")
            where = (s.clip_id, src_id, s.shot, s.index, s.start, s.frames, s.start_s, s.end_s)
            statements.append((insert, (*where, status, int(stage), reason)))
            o = Outcome(stage, s.clip_id, s.kept, reason, {"frames": s.frames, "start": s.start})
            o.footage_s = s.frames / FPS
            statements.append(self._decision_sql(o, run_id))
        statements.append(("UPDATE sources SET status='segmented', stage=? WHERE source_id=?", (int(stage), src_id)))
        self._tx(statements)

    def set_splits(self, splits: dict[str, str]) -> None:
        self._tx(("UPDATE clips SET split=? WHERE clip_id=?", (v, k)) for k, v in splits.items())

    # --- reading ----------------------------------------------------------------------------
    def sources(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM sources ORDER BY rel_path").fetchall()

    def clips(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM clips ORDER BY clip_id").fetchall()

    def decisions(self) -> dict[tuple[str, int], sqlite3.Row]:
        rows = self.db.execute("SELECT * FROM decisions").fetchall()
        return {(r["item_id"], r["stage"]): r for r in rows}

    def runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
