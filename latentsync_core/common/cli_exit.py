"""Exit statuses and the error line shared by the library's command-line entries
(``preprocess``, ``train ...``): ``error [CODE]: sentence`` on stderr, one status per kind.
Run on their own, they read their settings through ``common/cli_settings.py``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_CANNOT_RUN = 2  # bad arguments, config or input: nothing (more) was done
EXIT_ITEMS_FAILED = 3  # ran, but some items failed (preprocess)
EXIT_INTERRUPTED = 130  # stopped by a signal; rerun (with --resume) to continue


def fail(code: str, message: str, status: int = EXIT_CANNOT_RUN) -> int:
    """Print the machine-readable code and the human sentence; return ``status``."""
    print(f"error [{code}]: {message}", file=sys.stderr)
    return status


def run_standalone(add_parser: Callable[[argparse._SubParsersAction], None], argv: Sequence[str] | None) -> int:
    """A library command run on its own (``python -m latentsync_core.<package>.cli ...``): the
    parser ``add_parser`` fills (its settings: environment, ``.env``, defaults), warnings-only
    logging, the command's exit status."""
    from latentsync_core.common.cli_settings import SettingsInvalid

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentsync")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsInvalid as exc:
        return fail(exc.code, exc.message)
