"""One grammar for the devices a process runs on (the service's LATENTSYNC_GPU_IDS, its
Celery workers' --gpus, preprocessing's gpus), on a host with a given number of GPUs."""

from __future__ import annotations

import pytest
import torch

from latentsync_core.common.devices import DeviceSpec, resolve_devices
from latentsync_core.common.errors import CodedError


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Pretend the host has ``n`` visible GPUs (only what resolve_devices asks torch)."""

    def set_count(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return set_count


def _code(*args, **kwargs) -> str:
    with pytest.raises(CodedError) as err:
        resolve_devices(*args, **kwargs)
    return err.value.code


def test_the_service_grammar(gpus) -> None:
    gpus(2)
    assert resolve_devices("") == [DeviceSpec("cuda:0", "auto", 0)]  # the single-device default
    assert resolve_devices("", "cuda:1", 1) == [DeviceSpec("cuda:1", "cuda:1", 1)]
    assert resolve_devices("all") == [DeviceSpec("cuda:0", "cuda:0", 0), DeviceSpec("cuda:1", "cuda:1", 1)]
    assert resolve_devices(" 1, cpu ") == [DeviceSpec("cuda:1", "cuda:1", 1), DeviceSpec("cpu:1", "cpu")]
    assert resolve_devices("cpu,cpu") == [DeviceSpec("cpu:0", "cpu"), DeviceSpec("cpu:1", "cpu")]
    assert _code("0,0") == _code("gpu") == "BAD_GPU_IDS"
    assert _code("2") == "GPU_UNAVAILABLE"
    gpus(0)
    assert resolve_devices("") == [DeviceSpec("cpu", "auto", 0)]
    assert _code("all") == "NO_GPU"


def test_the_preprocessing_grammar(gpus) -> None:
    """Empty or none is the CPU; all without GPUs falls back to the CPU; absent GPUs are an error."""

    def devices(spec: str) -> list[str]:
        return [d.device for d in resolve_devices(spec, "cpu", setting="--gpus", cpu_without_gpus=True)]

    gpus(0)
    assert devices("") == devices("none") == devices("cpu") == devices("all") == ["cpu"]
    with pytest.raises(CodedError) as err:
        devices("0")
    assert err.value.code == "GPU_UNAVAILABLE" and "--gpus none or all" in err.value.message
    gpus(2)
    assert devices("all") == ["cuda:0", "cuda:1"] and devices("1") == ["cuda:1"] and devices("none") == ["cpu"]
