"""``latentsync config``: every effective setting, where it came from (flag, environment,
``.env``, default), secrets masked; ``--json`` for machines.

Each setting also has a flag here (``--weights demo``), so that the command shows what a
command given that flag would run with.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from latentsync_core.common.cli_exit import EXIT_OK, fail
from latentsync_core.common.cli_settings import ENV_FILE, PREFIX, SettingsInvalid, read_dotenv
from server.settings import Settings, load_settings

MASK = "***"
# Field names whose values are secrets; URLs of any setting have their password masked too.
_SECRET_NAME = re.compile(r"secret|api_keys|password|token")
# LATENTSYNC_* names read elsewhere (the client, the ffmpeg lookup): not reported as unused.
_READ_ELSEWHERE = {"SERVER", "API_KEY", "FFMPEG", "FFPROBE"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``config`` with one flag per setting."""
    p = subparsers.add_parser(
        "config",
        help="print every effective setting and where it came from (flag, environment, .env, default)",
        description="Settings resolve the same way for every command: a flag, else LATENTSYNC_<NAME> in the "
        "environment, else .env in the working folder, else the default. Secrets are masked.",
    )
    p.add_argument("--json", action="store_true", help="print JSON: {name: {env, value, source}}")
    flags = p.add_argument_group("settings (as a command's flag would set them)")
    for name in Settings.model_fields:
        flags.add_argument(
            f"--{name.replace('_', '-')}", dest=f"setting_{name}", metavar="VALUE", help=PREFIX + name.upper()
        )
    p.set_defaults(func=cmd_config)


def mask_url(text: str) -> str:
    """A URL with its password replaced by ``***`` (redis://:pw@host -> redis://:***@host)."""
    parts = urlsplit(text)
    if not parts.password:
        return text
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:{MASK}@{host}"))


def shown(name: str, value: Any) -> Any:
    """``value`` as printed: JSON types, secrets masked (an unset secret stays visibly empty)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [shown(name, item) for item in value]
    if isinstance(value, str):
        if _SECRET_NAME.search(name):
            return MASK if value else ""
        return mask_url(value) if "://" in value else value
    return value


def sources(flags: dict[str, str], env_file: str | Path = ENV_FILE) -> tuple[dict[str, str], list[str]]:
    """Where each setting comes from, as pydantic-settings resolves it (names case-insensitive),
    and the ``LATENTSYNC_*`` names in the environment or ``.env`` that no setting reads."""
    environ = {k.upper() for k in os.environ if k.upper().startswith(PREFIX)}
    dotenv = set(read_dotenv(env_file))
    found = {}
    for name in Settings.model_fields:
        key = PREFIX + name.upper()
        found[name] = (
            "flag" if name in flags else "environment" if key in environ else ".env" if key in dotenv else "default"
        )
    known = {PREFIX + n.upper() for n in Settings.model_fields} | {PREFIX + n for n in _READ_ELSEWHERE}
    unused = [f"{k} ({'environment' if k in environ else '.env'})" for k in sorted((environ | dotenv) - known)]
    return found, unused


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def cmd_config(args: argparse.Namespace) -> int:
    flags = {
        name: getattr(args, f"setting_{name}")
        for name in Settings.model_fields
        if getattr(args, f"setting_{name}") is not None
    }
    try:
        settings = load_settings(**flags)
    except SettingsInvalid as exc:
        return fail(exc.code, exc.message)
    env_file = Settings.model_config.get("env_file") or ENV_FILE
    found, unused = sources(flags, str(env_file))
    rows = {
        name: {"env": PREFIX + name.upper(), "value": shown(name, getattr(settings, name)), "source": found[name]}
        for name in Settings.model_fields
    }
    if args.json:
        print(
            json.dumps({"settings": rows, "env_file": str(Path(str(env_file)).resolve()), "unused": unused}, indent=2)
        )
        return EXIT_OK
    width = max(len(row["env"]) for row in rows.values())
    for row in rows.values():
        print(f"{row['env']:<{width}}  {row['source']:<11}  {_as_text(row['value'])}")
    for name in unused:
        print(f"warning: {name} is no setting (misspelt?)", file=sys.stderr)
    return EXIT_OK
