"""A disk cache of the audio-independent work on a source video ("template"): per frame,
the face flag, the smoothed alignment matrix and the VAE encoder moments of the masked
and of the full aligned face. A backend that reuses one avatar clip with new speech pays
for face detection and the two VAE encodes once.

Entries are keyed by the SHA-256 of the video's bytes plus a fingerprint of everything
else the values depend on (resolution, detector, VAE weights, dtype, device kind, and the
face selection: a ``face=track:1`` entry keeps that person's matrices, and the per-shot
choice its job result reports). The moments, not sampled latents, are stored: every job
still draws its own noise from its own seed, so a cached run gives the same output as an
uncached one.

Layout: ``<root>/<key>/meta.json`` + ``moments.npy``; an entry is written in a staging
folder and renamed into place, so readers never see half an entry. The total size is
bounded; the least recently used entries go first.

A job uses the cache through a session (``TemplateCache.open``): the template found for
its video, the encoder moments of its source frames (read from the template, or computed
once per frame and kept), and publishing what it built after it succeeded. Without a
cache, ``NoTemplateCache`` opens sessions with the same interface that keep the moments
in the job's work folder only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT = 2  # 2: face boxes kept (sync scoring of outputs)
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# numpy has no bfloat16: those moments are kept as their raw 16-bit patterns.
_NP_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16}


def numpy_dtype(dtype: torch.dtype) -> type:
    return _NP_DTYPES[dtype]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()


def from_numpy(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t


def allocated_memmap(path: Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file of ``shape``, memory-mapped for writing, with every disk block
    reserved before it is mapped. A map over a sparse file takes its blocks when a page is
    first written; on a full disk the kernel then answers with SIGBUS, which kills the whole
    process. Reserving up front turns a full disk into an ``OSError`` (ENOSPC) here."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        size = f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _write_zeros(f, size)  # a filesystem without fallocate: ordinary writes reserve the blocks
    return np.lib.format.open_memmap(path, mode="r+")


def _write_zeros(f: BinaryIO, size: int) -> None:
    zeros = bytes(_CHUNK)
    while (left := size - f.tell()) > 0:
        f.write(zeros[:left])
    f.flush()
    os.fsync(f.fileno())


@dataclass
class Template:
    """Everything audio-independent about the first ``count`` frames of a video."""

    matrices: np.ndarray  # (count, 2, 3) float32
    has_face: np.ndarray  # (count,) bool
    boxes: np.ndarray  # (count, 4) float32 face boxes x1, y1, x2, y2; NaN where no face
    complete: bool  # count is every frame of the video
    moments: np.ndarray  # (count, 2, 8, h, w): masked-face and face moments, memory-mapped
    face_choice: dict | None = None  # a face selection's per-shot record (FaceChoice.to_json)

    @property
    def count(self) -> int:
        return len(self.has_face)

    def covers(self, n_out: int) -> bool:
        """Can a job with ``n_out`` output frames use it (the plain path reads at most
        ``n_out`` frames, and loops only over a whole video)?"""
        return self.complete or self.count >= n_out


class PlannedSource(Protocol):
    """What a template is made of, as a job's source plan (``source.SourcePlan``) has it."""

    raw_matrices: np.ndarray  # (F, 2, 3) float32, NaN where no face
    has_face: np.ndarray  # (F,) bool
    boxes: np.ndarray  # (F, 4) float32 face boxes, NaN where no face
    complete: bool  # F is every frame of the video
    face_choice: dict | None  # with a face selection: which track each shot used and why


class TemplateCache:
    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(video_sha256: str, fingerprint: str) -> str:
        return hashlib.sha256(f"{FORMAT}|{video_sha256}|{fingerprint}".encode()).hexdigest()[:40]

    def get(self, key: str, dtype: torch.dtype) -> Template | None:
        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT:
                return None
            arrays = np.load(folder / "arrays.npz")
            moments = np.load(folder / "moments.npy", mmap_mode="r")
            template = Template(
                matrices=arrays["matrices"],
                has_face=arrays["has_face"],
                boxes=arrays["boxes"],
                complete=bool(meta["complete"]),
                moments=moments,
                face_choice=meta.get("face_choice"),
            )
            if moments.dtype != numpy_dtype(dtype) or len(moments) != template.count:
                raise ValueError("moments do not match the entry")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:  # damaged: drop it
            log.warning("template cache entry %s unreadable (%s): removed", key, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        os.utime(folder)  # least-recently-used order
        return template

    def staging(self) -> Path:
        """A private folder for an entry being built (``moments.npy`` can be written there
        frame by frame as a memory map)."""
        folder = self.root / f".staging-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

    def commit(
        self,
        key: str,
        folder: Path,
        matrices: np.ndarray,
        has_face: np.ndarray,
        boxes: np.ndarray,
        complete: bool,
        face_choice: dict | None = None,
    ) -> bool:
        """Publish a staged entry (its ``moments.npy`` already written); False when it is
        larger than the whole cache, which then keeps nothing of it."""
        try:
            np.savez(
                folder / "arrays.npz",
                matrices=matrices.astype(np.float32),
                has_face=has_face.astype(bool),
                boxes=boxes.astype(np.float32),
            )
            meta = {"format": FORMAT, "complete": complete, "frames": len(has_face), "created": time.time()}
            if face_choice is not None:
                meta["face_choice"] = face_choice
            (folder / "meta.json").write_text(json.dumps(meta))
            size = _size(folder)
            if size > self.max_bytes:
                log.info("template of %d MB exceeds the cache bound: not kept", size // 2**20)
                return False
            target = self.root / key
            if target.exists():  # an older entry (e.g. covering fewer frames) is replaced
                shutil.rmtree(target, ignore_errors=True)
            os.replace(folder, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.evict(keep=key)
        return True

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used entries until the total fits the bound; stale
        staging folders (crashed jobs) older than an hour go too."""
        entries = []
        for child in self.root.iterdir():
            if child.name.startswith(".staging-"):
                if time.time() - child.stat().st_mtime > 3600:
                    shutil.rmtree(child, ignore_errors=True)
                continue
            if child.is_dir():
                entries.append((child.stat().st_mtime, _size(child), child))
        total = sum(e[1] for e in entries)
        for _, size, child in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if child.name == keep:
                continue
            shutil.rmtree(child, ignore_errors=True)
            total -= size

    def total_bytes(self) -> int:
        return sum(_size(c) for c in self.root.iterdir() if c.is_dir() and not c.name.startswith("."))

    def open(
        self, video_path: str | Path, fingerprint: str, dtype: torch.dtype, n_out: int, work: Path
    ) -> CacheSession:
        """A job's session: the entry for this video if it covers ``n_out`` output frames."""
        key = self.key(file_sha256(video_path), fingerprint)
        template = self.get(key, dtype)
        usable = template if template is not None and template.covers(n_out) else None
        return CacheSession(self, key, usable, work, dtype)


class NoTemplateCache:
    """The cache turned off: sessions keep moments in the job's work folder, for the job only."""

    def open(
        self, video_path: str | Path, fingerprint: str, dtype: torch.dtype, n_out: int, work: Path
    ) -> TemplateSession:
        return TemplateSession(work, dtype)


ComputeMoments = Callable[[np.ndarray], torch.Tensor]


class TemplateSession:
    """One job's moments: one row per source frame, each computed at most once (looped
    frames reuse theirs). This base keeps them in the work folder and publishes nothing."""

    template: Template | None = None  # a cached template this job's source plan comes from

    def __init__(self, work: Path, dtype: torch.dtype):
        self._work, self._dtype = work, dtype
        self._rows: np.ndarray | None = None
        self._known: np.ndarray | None = None

    def __enter__(self) -> TemplateSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _moments_folder(self) -> Path:
        return self._work

    def open_moments(self, frames: int, latent_size: int) -> None:
        """Where the moments of the job's ``frames`` source frames are: the template's on a
        hit, else a memory map filled as the windows need them."""
        if self.template is not None:
            self._rows, self._known = self.template.moments, np.ones(frames, bool)
            return
        self._rows = allocated_memmap(
            self._moments_folder() / "moments.npy", numpy_dtype(self._dtype), (frames, 2, 8, latent_size, latent_size)
        )
        self._known = np.zeros(frames, bool)

    def moments(self, src_idx: np.ndarray, compute: ComputeMoments, device: torch.device) -> torch.Tensor:
        """(count, 2, 8, h, w) moments of the source frames ``src_idx``; ``compute(positions)``
        encodes the frames at those positions of ``src_idx`` that have none yet."""
        assert self._rows is not None and self._known is not None, "open_moments first"
        todo = np.flatnonzero(~self._known[src_idx])
        if len(todo):
            fresh = compute(todo)
            for j, row in zip(todo, to_numpy(fresh), strict=True):
                if not self._known[src_idx[j]]:  # a frame can appear twice where the loop turns
                    self._rows[src_idx[j]] = row
                    self._known[src_idx[j]] = True
            if len(todo) == len(src_idx):
                return fresh
        return from_numpy(self._rows[src_idx], self._dtype).to(device)

    def publish(self, plan: PlannedSource) -> dict | None:
        """After a successful job: what the cache did (``{"key", "used", "stored"}``), or
        None without a cache."""
        return None

    def close(self) -> None:
        self._rows = None
        (self._work / "moments.npy").unlink(missing_ok=True)


class CacheSession(TemplateSession):
    """A session on the cache: moments come from the template on a hit; on a miss they
    are written to a staging folder that ``publish`` turns into the video's entry."""

    def __init__(self, cache: TemplateCache, key: str, template: Template | None, work: Path, dtype: torch.dtype):
        super().__init__(work, dtype)
        self.cache, self.key, self.template = cache, key, template
        self._staging: Path | None = None  # the entry being built, until published or dropped

    def _moments_folder(self) -> Path:
        self._staging = self.cache.staging()
        return self._staging

    def publish(self, plan: PlannedSource) -> dict | None:
        state = {"key": self.key, "used": self.template is not None, "stored": False}
        if self._staging is not None and self._known is not None and self._known.all():
            self._rows.flush()
            self._rows = None  # the memory map must be closed before the rename
            try:
                state["stored"] = self.cache.commit(
                    self.key,
                    self._staging,
                    plan.raw_matrices,
                    plan.has_face,
                    plan.boxes,
                    plan.complete,
                    plan.face_choice,
                )
            except OSError as exc:  # a full disk or a racing writer must not fail a finished job
                log.warning("template not stored: %s", exc)
            self._staging = None
        return state

    def close(self) -> None:
        self._rows = None
        if self._staging is not None:  # the job failed before publishing: drop the partial entry
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
