"""The ``latentsync`` command: assembles the library's commands (``infer``, ``warmup``,
``sync-score``, ``download-weights``, ``preprocess``, ``train unet|syncnet|export``, ``eval``,
``faces``) with the service's own (``serve``, ``worker``, ``db``, ``config``). Every command reads
this deployment's ``Settings`` (``load_settings``: flag > environment > ``.env`` > default);
``latentsync config`` shows them."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from latentsync_client.cli import add_parser as add_client_parser
from latentsync_core.common.cli_exit import fail
from latentsync_core.common.cli_settings import SettingsInvalid
from latentsync_core.data.cli import add_parser as add_preprocess_parser
from latentsync_core.evaluation.cli import add_parser as add_eval_parser
from latentsync_core.inference.cli import add_parser as add_inference_parsers
from latentsync_core.sync.cli import add_parser as add_sync_score_parser
from latentsync_core.training.cli import add_parser as add_train_parser
from latentsync_core.vision.cli import add_parser as add_faces_parser
from latentsync_core.weights.cli import add_parser as add_weights_parser
from server.config_cli import add_parser as add_config_parser
from server.db_cli import add_parser as add_db_parser
from server.settings import describe_errors, load_settings
from server.worker_cli import add_parser as add_worker_parser


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    load_settings()  # a bad setting stops here with its code, not in a traceback from the app factory
    uvicorn.run("server.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentsync", description="LatentSync 1.6 lip-sync")
    sub = parser.add_subparsers(dest="command", required=True)
    add_preprocess_parser(sub, load_settings)
    add_worker_parser(sub)
    add_train_parser(sub, load_settings)  # train unet | syncnet | export
    add_eval_parser(sub, load_settings)  # eval run | report | syncnet-acc
    add_db_parser(sub)  # db check | rebuild
    add_faces_parser(sub, load_settings)  # faces VIDEO: the track ids --face track:<id> takes
    add_inference_parsers(sub, load_settings)  # infer, warmup
    add_sync_score_parser(sub, load_settings)
    add_config_parser(sub)  # config [--json]: the effective settings and their sources
    add_client_parser(sub)  # submit, jobs, result, cancel: a (remote) service through the client
    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    add_weights_parser(sub, load_settings)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsInvalid as exc:
        return fail(exc.code, exc.message)
    except ValidationError as exc:  # commands that build Settings() themselves (db, worker)
        return fail("SETTINGS_INVALID", describe_errors(exc))


if __name__ == "__main__":
    sys.exit(main())
