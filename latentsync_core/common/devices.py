"""Which devices a process runs on, from one setting such as ``all``, ``0,1`` or ``cpu,cpu``
(the service's ``LATENTSYNC_GPU_IDS`` and its Celery workers' ``--gpus``, preprocessing's
``gpus``)."""

from __future__ import annotations

from dataclasses import dataclass

from latentsync_core.common.errors import CodedError


@dataclass(frozen=True)
class DeviceSpec:
    name: str  # unique in this process: "cuda:1", "cpu:0"
    device: str  # what torch is given: "cuda:1", "cpu"
    gpu_id: int = 0


def resolve_devices(
    spec: str,
    default: str = "auto",
    gpu_id: int = 0,
    *,
    setting: str = "LATENTSYNC_GPU_IDS",
    cpu_without_gpus: bool = False,
) -> list[DeviceSpec]:
    """The devices ``spec`` names: ``all`` (every visible GPU), GPU numbers and ``cpu``
    entries (``0,1``, ``cpu,cpu``: one model copy each), ``none`` (the CPU); empty: the one
    device ``default`` (``auto``: ``cuda:<gpu_id>`` when there is a GPU, else the CPU).
    ``all`` on a host without GPUs is NO_GPU, or the CPU with ``cpu_without_gpus``; a GPU
    that is not visible is GPU_UNAVAILABLE, one named twice or a bad entry BAD_GPU_IDS.
    ``setting`` names where ``spec`` came from, in the messages."""
    import torch  # only now: settings are parsed without loading torch

    text = spec.strip().lower()
    if not text:
        auto = f"cuda:{gpu_id}" if torch.cuda.is_available() else "cpu"
        return [DeviceSpec(auto if default in ("auto", "") else default, default, gpu_id)]
    if text == "none":
        return [DeviceSpec("cpu:0", "cpu")]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text == "all":
        if count == 0 and cpu_without_gpus:
            return [DeviceSpec("cpu:0", "cpu")]
        if count == 0:
            raise CodedError("NO_GPU", f"{setting}=all but torch sees no CUDA device")
        return [DeviceSpec(f"cuda:{i}", f"cuda:{i}", i) for i in range(count)]
    specs = []
    for i, item in enumerate(part.strip() for part in text.split(",")):
        if item == "cpu":
            specs.append(DeviceSpec(f"cpu:{i}", "cpu"))
        elif item.isdigit():
            specs.append(DeviceSpec(f"cuda:{int(item)}", f"cuda:{int(item)}", int(item)))
        else:
            raise CodedError("BAD_GPU_IDS", f"{setting}: '{item}' is not a GPU number or 'cpu'")
    gpus = [s.gpu_id for s in specs if s.device != "cpu"]
    if len(set(gpus)) != len(gpus):
        raise CodedError("BAD_GPU_IDS", f"{setting} names a GPU twice")
    missing = sorted(i for i in gpus if i >= count)
    if missing:
        raise CodedError(
            "GPU_UNAVAILABLE", f"GPU(s) {missing} requested but {count} visible; use {setting} none or all"
        )
    return specs
