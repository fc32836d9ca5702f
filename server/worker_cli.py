"""``latentsync worker``: run jobs from the Celery queue on this host's devices (many-hosts
mode, ``LATENTSYNC_BROKER_URL``). One process per device, each loading its models once and
taking one job at a time; with several devices this process starts and watches them."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from latentsync_core.common.cli_exit import fail
from latentsync_core.common.cli_settings import SettingsInvalid
from latentsync_core.common.errors import CodedError

if TYPE_CHECKING:
    from latentsync_core.common.devices import DeviceSpec
    from server.settings import Settings

log = logging.getLogger("latentsync.worker")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``worker`` to the command line's subcommands."""
    p = subparsers.add_parser("worker", help="run jobs from the Celery + Redis queue on this host's devices")
    p.add_argument("--gpus", help="devices: all, 0,1 or cpu (default: LATENTSYNC_GPU_IDS, else one device)")
    p.add_argument("--name", help="this host's name in job records (default: LATENTSYNC_WORKER_NAME or host name)")
    p.add_argument("--device-name", help=argparse.SUPPRESS)  # set for the per-device processes
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from latentsync_core.common.devices import resolve_devices
    from server.settings import load_settings

    settings = load_settings(**({"worker_name": args.name} if args.name else {}))  # flag > environment > .env
    if not settings.broker_url:
        print("error [NO_BROKER]: set LATENTSYNC_BROKER_URL (redis://host:6379/0) to run a worker", file=sys.stderr)
        return 2
    try:
        gpu_ids = args.gpus if args.gpus is not None else settings.gpu_ids
        specs = resolve_devices(gpu_ids, settings.device, settings.gpu_id)
    except CodedError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    if len(specs) == 1:
        return serve_device(settings, specs[0], args.device_name or specs[0].name)
    return _supervise(args, specs)


def _supervise(args: argparse.Namespace, specs: list[DeviceSpec]) -> int:
    """One child per device; SIGTERM is passed on (each hands its running job back)."""
    children = []
    for spec in specs:
        gpu = "cpu" if spec.device == "cpu" else str(spec.gpu_id)
        cmd = [sys.executable, "-m", "server.worker_cli", "--gpus", gpu, "--device-name", spec.name]
        if args.name:
            cmd += ["--name", args.name]
        children.append(subprocess.Popen(cmd))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def serve_device(settings: Settings, spec: DeviceSpec, device_name: str) -> int:
    from celery.signals import worker_shutting_down

    from latentsync_core.inference import build_pipeline
    from server.runners.celery_app import QUEUE, RUN_JOB, make_celery
    from server.runners.celery_worker import DeviceRuntime
    from server.runners.devices import device_options, host_name

    pipeline = build_pipeline(device_options(settings.pipeline_options(), spec))
    host = host_name(settings)
    runtime = DeviceRuntime(settings, device_name, pipeline, host)
    app = make_celery(settings)

    @app.task(name=RUN_JOB)
    def run_job(job_id: str) -> None:
        runtime.run_job(job_id)

    # SIGTERM (a rolling deploy): Celery's warm shutdown waits for the running task, which
    # this makes stop at its next step and hand its job back (``DeviceRuntime.run_job``).
    worker_shutting_down.connect(lambda **_: runtime.stop(), weak=False)

    log.info("worker %s ready on %s (%s)", host, device_name, pipeline.describe())
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            QUEUE,
            "--loglevel=INFO",
            f"--hostname={host}-{device_name.replace(':', '')}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    runtime.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentsync")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["worker", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except SettingsInvalid as exc:
        return fail(exc.code, exc.message)


if __name__ == "__main__":
    sys.exit(main())
