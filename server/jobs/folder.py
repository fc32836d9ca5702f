"""A job's files: its own folder under ``<data_dir>/jobs`` (the uploads, ``tmp/`` and a
growing ``stream.mp4`` while it runs, ``result.mp4``). Every removal of a job's files goes
through :class:`JobFolder`."""

from __future__ import annotations

import shutil
from pathlib import Path

from server.jobs.model import Job


class JobFolder:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def of(cls, job: Job) -> JobFolder:
        return cls(Path(job.work_dir))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def tmp(self) -> Path:
        """The running attempt's scratch space (frames, moments): gone when it ends badly."""
        return self.path / "tmp"

    @property
    def result(self) -> Path:
        return self.path / "result.mp4"

    @property
    def stream(self) -> Path:
        """The frames finished so far as a growing fragmented MP4 (``GET /jobs/{id}/stream``)."""
        return self.path / "stream.mp4"

    def create(self) -> None:
        self.path.mkdir(parents=True)  # a new job's folder: never one that exists

    def remove(self) -> None:
        """The folder and everything in it (what is already gone is no error); a stray file or
        link in its place is unlinked, never followed."""
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)

    def remove_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class JobFolders:
    """The jobs folder: one :class:`JobFolder` per job, named by the job's id."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.root / job_id)

    def all(self) -> list[JobFolder]:
        return [JobFolder(child) for child in self.root.iterdir()]
