"""A job's files: its own folder under ``<data_dir>/jobs`` (the uploads, ``tmp/`` and a
growing ``stream.mp4`` while it runs, then ``result.mp4``, and ``job.json``: a copy of its record, so
that the job database can be rebuilt from the folders, ``server/jobs/rebuild.py``). Every
removal of a job's files goes through :class:`JobFolder`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from latentsync_core.storage.atomic import PART, write_text_atomic
from server.jobs.model import Job

UPLOAD_PREFIX = "input_"  # uploaded files are saved as input_<field><.ext> (``server/api/uploads.py``)
RECORD = "job.json"
_RECORD_PART = Path(RECORD).stem + PART
_JOB_FIELDS = {f.name for f in dataclasses.fields(Job)}


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
    def record(self) -> Path:
        return self.path / RECORD

    def write_record(self, job: Job) -> None:
        """The record, whole or not at all (written aside, then renamed); nothing when the
        folder is gone (the job was removed meanwhile)."""
        if self.path.is_dir():
            write_text_atomic(self.record, json.dumps(dataclasses.asdict(job)))

    def read_record(self) -> Job | None:
        """The record kept here; None when there is none or it cannot be read."""
        try:
            fields = json.loads(self.record.read_text())
            return Job(**{k: v for k, v in fields.items() if k in _JOB_FIELDS})
        except (OSError, ValueError, TypeError):
            return None

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

    def remove_files(self) -> None:
        """Everything but the record (a job that ended without a result, or whose result
        expired: its record lives on until it is purged); a folder without one goes whole."""
        if not self.record.is_file() or self.path.is_symlink():
            self.remove()
            return
        for child in self.path.iterdir():
            if child.name == RECORD or child.name.startswith(_RECORD_PART):  # a record being written
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def remove_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def remove_inputs(self) -> None:
        """What only a run needs: the uploaded inputs, the scratch space and the live stream
        (a second copy of the result's frames: an ended job's stream is its result). The result
        and the record stay (path inputs live outside the folder: never touched)."""
        self.remove_tmp()
        self.stream.unlink(missing_ok=True)  # a follower still reading holds its own handle
        if self.path.is_dir() and not self.path.is_symlink():
            for upload in self.path.glob(f"{UPLOAD_PREFIX}*"):
                if upload.is_dir() and not upload.is_symlink():
                    shutil.rmtree(upload, ignore_errors=True)
                else:
                    upload.unlink(missing_ok=True)  # a file or a link: unlinked, never followed


class JobFolders:
    """The jobs folder: one :class:`JobFolder` per job, named by the job's id."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.root / job_id)

    def all(self) -> list[JobFolder]:
        return [JobFolder(child) for child in self.root.iterdir()]
