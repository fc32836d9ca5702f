"""This host's devices: which ones the settings name (``LATENTSYNC_GPU_IDS``), and the
pipeline options and job-record name of each."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from latentsync_core.errors import CodedError

if TYPE_CHECKING:
    from latentsync_core.inference.factory import PipelineOptions
    from server.settings import Settings


@dataclass(frozen=True)
class DeviceSpec:
    name: str  # unique in this process: "cuda:1", "cpu:0"
    device: str  # what torch is given: "cuda:1", "cpu"
    gpu_id: int = 0


def resolve_devices(gpu_ids: str, device: str = "auto", gpu_id: int = 0) -> list[DeviceSpec]:
    """The devices named by ``gpu_ids`` ("all", "0,1", "cpu,cpu"); empty: the one device
    ``device``/``gpu_id`` (the single-device default)."""
    text = gpu_ids.strip().lower()
    import torch

    if not text:
        auto = f"cuda:{gpu_id}" if torch.cuda.is_available() else "cpu"
        return [DeviceSpec(auto if device in ("auto", "") else device, device, gpu_id)]
    if text == "all":
        count = torch.cuda.device_count()
        if count == 0:
            raise CodedError("NO_GPU", "LATENTSYNC_GPU_IDS=all but torch sees no CUDA device")
        return [DeviceSpec(f"cuda:{i}", f"cuda:{i}", i) for i in range(count)]
    specs = []
    for i, item in enumerate(part.strip() for part in text.split(",")):
        if item == "cpu":
            specs.append(DeviceSpec(f"cpu:{i}", "cpu"))
        elif item.isdigit():
            specs.append(DeviceSpec(f"cuda:{item}", f"cuda:{item}", int(item)))
        else:
            raise CodedError("BAD_GPU_IDS", f"LATENTSYNC_GPU_IDS: '{item}' is not a GPU number or 'cpu'")
    if len({s.name for s in specs if s.device != "cpu"}) != sum(s.device != "cpu" for s in specs):
        raise CodedError("BAD_GPU_IDS", "LATENTSYNC_GPU_IDS names a GPU twice")
    return specs


def device_options(options: PipelineOptions, spec: DeviceSpec) -> PipelineOptions:
    """The pipeline options of one device."""
    return dataclasses.replace(options, device=spec.device, gpu_id=spec.gpu_id)


def host_name(settings: Settings) -> str:
    return settings.worker_name or socket.gethostname()
