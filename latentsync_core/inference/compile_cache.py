"""Compiled-kernel artifacts that outlive the process and the machine.

``torch.compile`` of the full-window UNet and VAE takes ~110 s on a fresh GPU machine;
until then a new replica runs eagerly (about 1.5x slower). PyTorch's portable cache
("mega-cache": the inductor FX-graph cache, AOTAutograd cache and autotuning results)
can be saved after a compile and loaded into a fresh process, which then only traces
and reads the kernels back. The artifact file is named by a key of everything the
kernels depend on (GPU model, torch/triton/CUDA versions, model configs, dtype, shapes),
so a folder shipped in an image can hold several and a mismatch is simply not found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1  # bump when the way a key is made changes


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return "none"


def environment_key_fields(device: torch.device) -> dict[str, object]:
    """What compiled kernels depend on outside the model: the device model and the tool chain."""
    fields: dict[str, object] = {"torch": torch.__version__, "triton": _triton_version(), "device": device.type}
    if device.type == "cuda":
        fields["gpu"] = torch.cuda.get_device_name(device)
        fields["capability"] = list(torch.cuda.get_device_capability(device))
        fields["cuda"] = torch.version.cuda
    return fields


def artifact_key(fields: dict[str, object]) -> str:
    """A file-name-safe digest of ``fields`` (JSON with sorted keys, so order is irrelevant)."""
    blob = json.dumps({"format": ARTIFACT_FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class CompileArtifacts:
    """A folder of ``<key>.bin`` artifact files (with a ``<key>.json`` saying what the key
    was made of, for people)."""

    folder: Path

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.bin"

    def load(self, key: str) -> bool:
        """Put the artifacts for ``key`` into this process's compile caches; False when
        there are none. A damaged or incompatible file is logged and ignored (the compile
        then runs cold), never fatal: it is only a cache."""
        path = self.path(key)
        if not path.is_file():
            return False
        try:
            info = torch.compiler.load_cache_artifacts(path.read_bytes())  # None: rejected (logged by torch)
        except Exception as exc:  # noqa: BLE001 - any failure means "no cache", not "no service"
            info, reason = None, exc
        else:
            reason = "damaged or from another PyTorch"
        if info is None:
            log.warning("compile artifacts %s could not be loaded (%s); compiling from scratch", path, reason)
            return False
        log.info("compile artifacts loaded from %s", path)
        return True

    def save(self, key: str, fields: dict[str, object]) -> Path | None:
        """Write what this process compiled so far under ``key`` (atomically: a reader
        never sees half a file); None when PyTorch recorded nothing to save."""
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return None
        blob, _info = saved
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(key)
        for dest, data in ((target, bytes(blob)), (target.with_suffix(".json"), _describe(fields))):
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".part-")
            try:
                os.fchmod(fd, 0o644)  # shipped in images and read by other users
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        log.info("compile artifacts saved to %s (%.1f MB)", target, len(blob) / 1e6)
        return target


def _describe(fields: dict[str, object]) -> bytes:
    return json.dumps({"format": ARTIFACT_FORMAT, **fields}, sort_keys=True, indent=1, default=str).encode()
