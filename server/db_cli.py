"""``latentsync db check`` and ``latentsync db rebuild``: the job database (embedded mode,
SQLite) against the records kept in the job folders (``server/jobs/rebuild.py``)."""

from __future__ import annotations

import argparse
import json

from latentsync_core.common.cli_exit import EXIT_OK, fail

EXIT_DAMAGED = 1  # check: the database is damaged or disagrees with the folders


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``db check`` and ``db rebuild`` to the command line's subcommands."""
    p = subparsers.add_parser("db", help="check the job database or rebuild it from the job folders")
    sub = p.add_subparsers(dest="db_command", required=True)
    check = sub.add_parser("check", help="integrity check and records against job folders (safe while serving)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_check)
    rebuild = sub.add_parser("rebuild", help="move the database aside and rebuild it from the job folders")
    rebuild.set_defaults(func=cmd_rebuild)


def _paths() -> tuple:
    from server.jobs.folder import JobFolders
    from server.settings import Settings

    settings = Settings()
    if settings.broker_url:
        return None, None
    return settings.data_dir / "jobs.sqlite3", JobFolders(settings.data_dir / "jobs")


def cmd_check(args: argparse.Namespace) -> int:
    from server.jobs.rebuild import check_database

    path, folders = _paths()
    if path is None:
        return fail("NOT_EMBEDDED", "LATENTSYNC_BROKER_URL is set: job records are in Redis, not SQLite")
    report = check_database(path, folders)
    if args.json:
        print(json.dumps({"ok": report.ok, **report.__dict__}, indent=2))
    else:
        print(f"database   {path}: {report.integrity}")
        print(f"records    {report.records} in the database, {report.folders} in job folders")
        for label, items in (
            ("only in folders", report.only_in_folders),
            ("only in database", report.only_in_database),
            ("status differs", report.status_differs),
        ):
            for item in items[:20]:
                print(f"{label}: {item}")
            if len(items) > 20:
                print(f"{label}: ... {len(items) - 20} more")
    if not report.ok:
        damaged = "damaged" if report.integrity != "ok" else "out of step with the job folders"
        return fail("DB_DAMAGED", f"the job database is {damaged}; run 'latentsync db rebuild'", EXIT_DAMAGED)
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    from server.jobs.rebuild import check_database, rebuild_database
    from server.jobs.sqlite_store import StoreInUse

    path, folders = _paths()
    if path is None:
        return fail("NOT_EMBEDDED", "LATENTSYNC_BROKER_URL is set: job records are in Redis, not SQLite")
    reason = "damaged" if check_database(path, folders).integrity != "ok" else "replaced"
    try:
        report = rebuild_database(path, folders, reason)
    except StoreInUse as exc:
        return fail("SERVICE_RUNNING", str(exc))
    if report.moved_to is not None:
        print(f"moved the old database to {report.moved_to}")
    print(f"rebuilt {path} with {report.restored} jobs from their folders")
    if report.unreadable:
        print(f"{len(report.unreadable)} job folders hold no readable record (removed at the next start)")
    return EXIT_OK
