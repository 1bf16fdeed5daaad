"""``maintkit history``: backfill the history from journals, list the runs it holds.

Only parsing and rendering: the mapping, the store and the import live in :mod:`maintkit.history`,
imported inside the commands so that ``maintkit --help`` never loads SQLAlchemy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

_JOURNAL_DIR = click.option(
    "--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs]; SQLite is beside it."
)


def open_history(journal_dir: str | None) -> Any:
    """The history store ($MAINTKIT_DATABASE_URL, else SQLite beside the journals); exit 1 if unreachable."""
    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.history.database import HistoryUnavailable
    from maintkit.history.location import database_url
    from maintkit.history.store import HistoryStore

    try:
        return HistoryStore.open(database_url(resolve_journal_dir(journal_dir)))
    except HistoryUnavailable as error:
        raise click.ClickException(f"the history database cannot be opened: {error}") from None


@click.group()
def history() -> None:
    """The history database: every run of every command (MAINTKIT_DATABASE_URL, else SQLite)."""


@history.command("import")
@click.argument("journals", nargs=-1, type=click.Path(exists=True, path_type=Path))
@_JOURNAL_DIR
def import_(journals: tuple[Path, ...], journal_dir: str | None) -> None:
    """Record JOURNALS (files or folders; default: every journal) into the history; safe to repeat."""
    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.history.importer import import_journals

    store = open_history(journal_dir)
    try:
        result = import_journals(store, list(journals) or [resolve_journal_dir(journal_dir)])
    finally:
        store.close()
    for path, why in result.skipped:
        click.echo(f"skipped {path}: {why}", err=True)
    click.echo(f"{len(result.imported)} run(s) recorded, {len(result.skipped)} file(s) skipped")


@history.command("runs")
@_JOURNAL_DIR
@click.option("--env", help="Only the runs of this environment.")
@click.option("-n", "--last", default=20, show_default=True, help="How many runs.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def runs(journal_dir: str | None, env: str | None, last: int, output: str) -> None:
    """List the runs the history holds, newest first."""
    from rich.table import Table

    from maintkit.reporting.terminal import make_console

    store = open_history(journal_dir)
    try:
        rows = store.runs(limit=last, env=env)
    finally:
        store.close()
    from maintkit.history.mapping import as_utc

    fields = ("id", "command", "playbook", "env", "sites", "started", "finished", "status", "exit_code")
    if output == "json":
        for row in rows:
            click.echo(json.dumps({f: _plain(getattr(row, f)) for f in fields}))
        return
    table = Table("run", "command", "playbook", "env", "sites", "started", "status", "exit", show_edge=False)
    for row in rows:
        table.add_row(
            row.id,
            str(row.command or ""),
            str(row.playbook or ""),
            str(row.env or ""),
            ", ".join(row.sites or []),
            f"{as_utc(row.started):%Y-%m-%d %H:%M:%SZ}",
            row.status,
            "" if row.exit_code is None else str(row.exit_code),
        )
    make_console().print(table)


def _plain(value: Any) -> Any:
    """A JSON-ready value: datetimes as ISO 8601 in UTC."""
    from datetime import datetime

    from maintkit.history.mapping import as_utc

    return as_utc(value).isoformat() if isinstance(value, datetime) else value
