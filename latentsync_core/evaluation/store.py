"""``DIR/results.sqlite``: one row per (model, test) and one per source video, written as
each is finished, so that a killed run continues where it stopped.

Tables: ``settings`` (what the outputs depend on: a rerun with other settings is refused),
``models`` (name -> UNet file), ``results`` (per model and test: output, status, scores,
I3D features) and ``sources`` (per source video: its FVD features). The ground truth (a
source video scored against its own speech) is stored as model ``ground-truth``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentsync_core.common.errors import CodedError
from latentsync_core.evaluation.scoring import VideoScore

DB_NAME = "results.sqlite"
GROUND_TRUTH = "ground-truth"
METRICS = ("lse_c", "lse_d", "offset", "face_fraction", "quality")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, position INTEGER NOT NULL, unet TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL, test TEXT NOT NULL, video TEXT NOT NULL, speech TEXT NOT NULL,
    own_audio INTEGER NOT NULL, output TEXT, status TEXT NOT NULL, error TEXT,
    lse_c REAL, lse_d REAL, offset REAL, face_fraction REAL, quality REAL, quality_model TEXT,
    fvd_start INTEGER, features BLOB, notes TEXT, seconds REAL,
    PRIMARY KEY (model, test)
);
CREATE TABLE IF NOT EXISTS sources (
    video TEXT PRIMARY KEY, fvd_start INTEGER, features BLOB, notes TEXT
);
"""


@dataclass
class ResultRow:
    model: str
    test: str
    video: str
    speech: str
    own_audio: bool
    status: str  # "done" or "failed"
    metrics: dict[str, float | None]
    quality_model: str | None
    features: np.ndarray | None
    output: str | None = None
    error: str | None = None
    fvd_start: int | None = None


def _blob(features: np.ndarray | None) -> bytes | None:
    return None if features is None else np.asarray(features, dtype="<f8").tobytes()


def _array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f8").copy()


class ResultsStore:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self.db:  # one transaction per finished item: a kill loses at most the item in progress
            yield self.db

    # -- settings and models -------------------------------------------------------------
    def check_settings(self, settings: dict[str, Any]) -> None:
        """Store ``settings`` on the first run; later runs must match (``RESULTS_MISMATCH``)."""
        stored = dict(self.db.execute("SELECT key, value FROM settings").fetchall())
        wanted = {k: json.dumps(v, sort_keys=True) for k, v in settings.items()}
        if not stored:
            with self._write() as db:
                db.executemany("INSERT INTO settings VALUES (?, ?)", wanted.items())
            return
        changed = sorted(k for k in wanted.keys() | stored.keys() if wanted.get(k) != stored.get(k))
        if changed:
            detail = ", ".join(f"{k}: {stored.get(k)} there, {wanted.get(k)} now" for k in changed)
            raise CodedError(
                "RESULTS_MISMATCH",
                f"{self.path} holds results made with other settings ({detail}); use another --output",
            )

    def settings(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM settings")}

    def add_model(self, name: str, unet: str) -> None:
        row = self.db.execute("SELECT unet FROM models WHERE name = ?", (name,)).fetchone()
        if row is not None:
            if row[0] != unet:
                raise CodedError(
                    "RESULTS_MISMATCH", f"model {name!r} is {row[0]} in {self.path}, not {unet}; give it another name"
                )
            return
        with self._write() as db:
            position = db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
            db.execute("INSERT INTO models VALUES (?, ?, ?)", (name, position, unet))

    def models(self) -> list[tuple[str, str]]:
        """(name, UNet file) in the order they were first evaluated."""
        return self.db.execute("SELECT name, unet FROM models ORDER BY position").fetchall()

    # -- results -------------------------------------------------------------------------
    def finished(self, model: str) -> set[str]:
        """Tests of ``model`` with a stored result (done or failed): not run again."""
        return {r[0] for r in self.db.execute("SELECT test FROM results WHERE model = ?", (model,))}

    def put(self, row: ResultRow, notes: list[str], seconds: float) -> None:
        values: dict[str, Any] = {
            "model": row.model,
            "test": row.test,
            "video": row.video,
            "speech": row.speech,
            "own_audio": int(row.own_audio),
            "output": row.output,
            "status": row.status,
            "error": row.error,
            **{name: row.metrics.get(name) for name in METRICS},
            "quality_model": row.quality_model,
            "fvd_start": row.fvd_start,
            "features": _blob(row.features),
            "notes": json.dumps(notes),
            "seconds": seconds,
        }
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        with self._write() as db:
            db.execute(f"INSERT OR REPLACE INTO results ({columns}) VALUES ({marks})", tuple(values.values()))

    def rows(self, model: str | None = None) -> list[ResultRow]:
        query = "SELECT model, test, video, speech, own_audio, status, lse_c, lse_d, offset, face_fraction, "
        query += "quality, quality_model, features, output, error, fvd_start FROM results"
        args: tuple = ()
        if model is not None:
            query, args = query + " WHERE model = ?", (model,)
        out = []
        for r in self.db.execute(query + " ORDER BY model, test", args):
            metrics = dict(zip(METRICS, r[6:11], strict=True))
            out.append(
                ResultRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], metrics, r[11], _array(r[12]), r[13], r[14], r[15])
            )
        return out

    # -- source videos (the real set of FVD) ---------------------------------------------
    def has_source(self, video: str) -> bool:
        return self.db.execute("SELECT 1 FROM sources WHERE video = ?", (video,)).fetchone() is not None

    def put_source(self, video: str, score: VideoScore) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?)",
                (video, score.fvd_start, _blob(score.features), json.dumps(score.notes)),
            )

    def source_features(self) -> dict[str, np.ndarray]:
        found = self.db.execute("SELECT video, features FROM sources WHERE features IS NOT NULL").fetchall()
        return {video: _array(blob) for video, blob in found}
