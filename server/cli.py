"""The ``latentsync`` command: assembles the library's commands (``infer``, ``warmup``,
``sync-score``, ``download-weights``, ``preprocess``, ``train unet|syncnet|export``, ``eval``,
``faces``) with the service's own (``serve``, ``worker``). The library's commands read this deployment's
``Settings``."""

from __future__ import annotations

import argparse
import logging
import sys

from latentsync_core.data.cli import add_parser as add_preprocess_parser
from latentsync_core.evaluation.cli import add_parser as add_eval_parser
from latentsync_core.inference.cli import add_parser as add_inference_parsers
from latentsync_core.sync.cli import add_parser as add_sync_score_parser
from latentsync_core.training.cli import add_parser as add_train_parser
from latentsync_core.vision.cli import add_parser as add_faces_parser
from latentsync_core.weights.cli import add_parser as add_weights_parser
from server.db_cli import add_parser as add_db_parser
from server.settings import Settings
from server.worker_cli import add_parser as add_worker_parser


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("server.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentsync", description="LatentSync 1.6 lip-sync")
    sub = parser.add_subparsers(dest="command", required=True)
    add_preprocess_parser(sub)
    add_worker_parser(sub)
    add_train_parser(sub)  # train unet | syncnet | export
    add_eval_parser(sub)  # eval run | report | syncnet-acc
    add_db_parser(sub)  # db check | rebuild
    add_faces_parser(sub)  # faces VIDEO: the track ids --face track:<id> takes
    add_inference_parsers(sub, Settings)  # infer, warmup
    add_sync_score_parser(sub, Settings)
    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    add_weights_parser(sub, Settings)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
