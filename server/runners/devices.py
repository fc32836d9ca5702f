"""This host's devices: the pipeline options and job-record name of each (which devices the
settings name is the library's ``resolve_devices``)."""

from __future__ import annotations

import dataclasses
import socket
from typing import TYPE_CHECKING

from latentsync_core.common.devices import DeviceSpec

if TYPE_CHECKING:
    from latentsync_core.inference.factory import PipelineOptions
    from server.settings import Settings


def device_options(options: PipelineOptions, spec: DeviceSpec) -> PipelineOptions:
    """The pipeline options of one device."""
    return dataclasses.replace(options, device=spec.device, gpu_id=spec.gpu_id)


def host_name(settings: Settings) -> str:
    return settings.worker_name or socket.gethostname()
