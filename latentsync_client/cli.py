"""``submit``, ``jobs``, ``result`` and ``cancel``: the service from the command line, through the client.

``add_parser(subparsers)`` registers the three commands on a parser (the service's
``latentsync`` command, or ``python -m latentsync_client``); each sets ``func``, which runs
it and returns the exit status. The server and key come from ``--server`` / ``--api-key``,
else ``LATENTSYNC_SERVER`` / ``LATENTSYNC_API_KEY`` from the environment, else from ``.env``. Failures print
``error [CODE]: sentence`` on stderr, the convention of the library's commands:

- 0  done;
- 2  could not run: bad arguments, the service refused the request or could not be reached;
- 3  the job ran but did not succeed (failed or canceled; its code is printed);
- 4  ``--wait`` timed out: the job goes on on the service;
- 130 interrupted (Ctrl-C): a submitted job goes on on the service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_CANNOT_RUN = 2
EXIT_JOB_FAILED = 3
EXIT_WAIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

DEFAULT_SERVER = "http://127.0.0.1:8000"


def fail(code: str, message: str, status: int = EXIT_CANNOT_RUN) -> int:
    """Print the machine-readable code and the human sentence on stderr; return ``status``."""
    print(f"error [{code}]: {message}", file=sys.stderr)
    return status


def _connection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        default=None,
        help=f"service URL (default: LATENTSYNC_SERVER from the environment or .env, else {DEFAULT_SERVER})",
    )
    p.add_argument("--api-key", default=None, help="API key (default: LATENTSYNC_API_KEY from the environment or .env)")
    p.add_argument("--json", action="store_true", help="print the service's JSON on stdout")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key, value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``submit``, ``jobs``, ``result`` and ``cancel``."""
    p = subparsers.add_parser(
        "submit",
        help="send a video and a speech track to a running service",
        description="Submits a lip-sync job (files streamed, one Idempotency-Key so a retried upload "
        "cannot make a second job). Prints the job id; --wait shows its progress, --output downloads the result.",
    )
    p.add_argument("video", type=Path)
    p.add_argument("audio", type=Path)
    _connection_options(p)
    p.add_argument("--wait", action="store_true", help="wait for the job, with a progress bar")
    p.add_argument("--output", type=Path, help="download the result here (implies --wait; resumes a broken download)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most (default: no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while waiting")
    p.add_argument("--steps", type=int, dest="inference_steps", help="denoising steps (service default 20)")
    p.add_argument("--guidance", type=float, dest="guidance_scale", help="guidance scale (service default 1.5)")
    p.add_argument("--seed", type=int)
    p.add_argument("--deepcache", action="store_true", default=None, dest="enable_deepcache")
    p.add_argument("--webhook-url", help="the service POSTs the finished job here (signed)")
    p.add_argument(
        "--param", type=_key_value, action="append", default=[], metavar="KEY=VALUE", help="any other job parameter"
    )
    p.add_argument("--idempotency-key", help="reuse a key to make a resubmission return the first job")
    p.set_defaults(func=run_submit)

    p = subparsers.add_parser("jobs", help="list the jobs of a running service")
    _connection_options(p)
    p.add_argument("--status", help="queued, running, succeeded, failed or canceled")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(func=run_jobs)

    p = subparsers.add_parser("result", help="download a finished job's video (resumes a broken download)")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("output", type=Path)
    _connection_options(p)
    p.set_defaults(func=run_result)

    p = subparsers.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job_id", metavar="ID")
    _connection_options(p)
    p.set_defaults(func=run_cancel)


def _setting(name: str) -> str | None:
    """``name`` from the environment, else from ``.env`` in the working folder (as every
    ``latentsync`` command reads its settings) where python-dotenv is installed: always with
    the service, optional in the light client distribution."""
    if os.environ.get(name):
        return os.environ[name]
    try:
        from dotenv import dotenv_values
    except ImportError:
        return None
    return dotenv_values(".env").get(name) or None


def _client(args: argparse.Namespace) -> Any:
    from latentsync_client.client import Client

    server = args.server or _setting("LATENTSYNC_SERVER") or DEFAULT_SERVER
    return Client(server, api_key=args.api_key or _setting("LATENTSYNC_API_KEY"))


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Library errors as ``error [CODE]`` lines and exit statuses."""

    def wrapper(args: argparse.Namespace) -> int:
        from latentsync_client.errors import LatentSyncError, WaitTimeout

        try:
            return run(args)
        except WaitTimeout as exc:
            return fail(exc.code, f"{exc.message}; it goes on on the service", EXIT_WAIT_TIMEOUT)
        except LatentSyncError as exc:
            where = f" (HTTP {exc.status})" if exc.status else ""
            return fail(exc.code, f"{exc.message}{where}")
        except OSError as exc:  # a local file: missing, unreadable, output folder not writable
            return fail("LOCAL_FILE_ERROR", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    wrapper.__name__ = run.__name__
    return wrapper


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


@_guarded
def run_submit(args: argparse.Namespace) -> int:
    for name in ("video", "audio"):
        if not getattr(args, name).is_file():
            return fail("FILE_NOT_FOUND", f"{name} file not found: {getattr(args, name)}")
    params = {
        "inference_steps": args.inference_steps,
        "guidance_scale": args.guidance_scale,
        "seed": args.seed,
        "enable_deepcache": args.enable_deepcache,
        "webhook_url": args.webhook_url,
        **dict(args.param),
    }
    with _client(args) as client:
        job = client.submit(args.video, args.audio, idempotency_key=args.idempotency_key, **params)
        if not (args.wait or args.output):
            if args.json:
                _print_json(job.raw)
            else:
                print(job.id)
            return EXIT_OK
        print(f"submitted job {job.id}", file=sys.stderr)
        try:
            job = client.wait(job, timeout=args.timeout, progress=not args.no_progress)
        except KeyboardInterrupt:
            message = f"stopped waiting; job {job.id} goes on (to stop it: cancel {job.id})"
            return fail("INTERRUPTED", message, EXIT_INTERRUPTED)
        if args.json:
            _print_json(job.raw)
        if not job.succeeded:
            err = job.error
            code = err.code if err else f"JOB_{job.status.upper()}"
            return fail(code, f"job {job.id} {job.status}: {err.message if err else 'no result'}", EXIT_JOB_FAILED)
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            path = client.result(job, args.output)
            print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
        if not args.json:
            print(job.id)
    return EXIT_OK


@_guarded
def run_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json(
            {"jobs": [j.raw for j in page.jobs], "total": page.total, "limit": page.limit, "offset": page.offset}
        )
        return EXIT_OK
    print(f"{'ID':32}  {'STATUS':9}  {'STAGE':10}  PROGRESS  ERROR")
    for job in page.jobs:
        error = job.error.code if job.error else ""
        print(f"{job.id:32}  {job.status:9}  {job.stage or '-':10}  {job.progress:7.0%}   {error}".rstrip())
    shown = f"{page.offset + 1}-{page.offset + len(page.jobs)}" if page.jobs else "none"
    print(f"{shown} of {page.total}", file=sys.stderr)
    return EXIT_OK


@_guarded
def run_result(args: argparse.Namespace) -> int:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with _client(args) as client:
        path = client.result(args.job_id, args.output)
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return EXIT_OK


@_guarded
def run_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
    if args.json:
        _print_json(job.raw)
    elif job.status in ("canceled", "canceling"):
        print(f"job {job.id} {job.status}")
    else:
        print(f"job {job.id} already {job.status}: nothing to cancel")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentsync_client", description="LatentSync service client")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
