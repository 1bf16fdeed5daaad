"""``maintkit releases`` and ``maintkit rollback``: the release history of an environment, and going back.

``releases`` connects to each host (read-only: the ``current`` link, ``releases/``, the history
file) and reads the promotable records from storage, so one table answers "what runs where, since
when, and what could be promoted". ``rollback`` is the shipped ``rollback`` playbook run like any
other (lock, journal, exit codes, manual steps on exit 3), with ``--to`` and ``--with-database``
turned into its variables.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from maintkit.cli.execute import (
    Settings,
    Vars,
    Where,
    execute,
    exit_with,
    fail_invalid,
    load,
    run_settings,
    split_values,
    target_options,
    var_options,
)


def _hosts(where: Where) -> list[tuple[Any, Any]]:
    """The selected hosts of the inventory with their variables."""
    from maintkit.config.inventory import load_inventory
    from maintkit.config.variables import host_vars
    from maintkit.model.problems import InvalidInput

    where.require()
    try:
        inv = load_inventory(where.env, where.inventory, Path.cwd())
    except InvalidInput as error:
        fail_invalid(error)
    hosts = inv.select(split_values(where.limit)) if where.limit else list(inv.hosts.values())
    if not hosts:
        raise click.UsageError(f"--limit {','.join(where.limit)} matches no host of {inv.name}")
    return [(h, host_vars(inv, h)) for h in hosts]


def _host_rows(host: Any, variables: Any, accept_new_host_keys: bool) -> list[dict[str, Any]]:
    """The releases of one host, newest first, marked with the promotable records in storage."""
    from maintkit.model.problems import MaintkitError
    from maintkit.secrets import Redactor
    from maintkit.storage.sites import site_name, site_targets
    from maintkit.text.templating import render
    from maintkit.transport.registry import open_transport
    from maintkit.updates import promotable as prom
    from maintkit.updates.releases import ReleaseRoot

    root_value = variables.get("release_root")
    if root_value is None:
        return [{"host": host.name, "error": "no release_root variable: not a release-based site"}]
    redactor = Redactor()
    root = str(render(root_value, variables, redactor))
    transport = open_transport(host, accept_new_host_keys=accept_new_host_keys)
    try:
        transport.connect()

        def run(command: str, *, stdin: bytes | None = None, stdout: Any = None) -> Any:
            return transport.run(command, stdin=stdin, stdout=stdout, timeout=60)

        rows = ReleaseRoot(run, root).rows()
    except MaintkitError as error:
        return [{"host": host.name, "error": str(error)}]
    finally:
        transport.close()
    site, env = site_name(variables), str(variables["maintkit_env"])
    records: set[str] = set()
    try:
        for target in site_targets(variables, None, redactor):
            records |= set(target.list_dir(prom.records_prefix(site, env)))
    except MaintkitError:
        pass
    for row in rows:
        row["host"] = host.name
        row["promotable"] = row["id"] in records
    return rows


@click.command()
@target_options
@click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def releases(where: Where, accept_new_host_keys: bool, output: str) -> None:
    """The releases of each host, newest first: id, time, current, state, promotable.

    Reads the hosts (the ``current`` link, ``releases/``, ``.maintkit/releases.json`` under the
    ``release_root`` variable) and the promotable records in storage; changes nothing.
    """
    from rich.table import Table

    from maintkit.reporting.terminal import make_console

    hosts = _hosts(where)
    rows = [row for host, variables in hosts for row in _host_rows(host, variables, accept_new_host_keys)]
    if output == "json":
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(show_edge=False)
    for column in ("host", "release", "created (UTC)", "current", "state", "promotable", "promoted from"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        if "error" in row:
            table.add_row(row["host"], f"[red]{row['error']}[/]", "", "", "", "", "")
            continue
        table.add_row(
            row["host"],
            row["id"],
            (row["created"] or "")[:19].replace("T", " "),
            "[bold green]current[/]" if row["current"] else "",
            row["state"] + ("" if row["exists"] else " (folder gone)"),
            "yes" if row["promotable"] else "",
            row["promoted_from"] or "",
        )
    make_console().print(table)


@click.command()
@target_options
@click.option(
    "--to", "to", metavar="RELEASE", help="The release to go back to (default: the one before current)."
)
@click.option(
    "--with-database",
    metavar="SNAPSHOT",
    help="Also restore the database from this snapshot (an id, latest, or before:ID: the newest "
    "complete one older than ID). Credentials are read from the app's config, as the update does.",
)
@click.option(
    "--end-maintenance",
    is_flag=True,
    help="End maintenance at the end even if it was on when this rollback began (after an update "
    "whose own rollback could not finish; the printed manual step says when).",
)
@var_options
@run_settings(check=True)
def rollback(
    where: Where,
    to: str | None,
    with_database: str | None,
    end_maintenance: bool,
    variables: Vars,
    settings: Settings,
) -> None:
    """Switch ``current`` back (to RELEASE, or the release before it) and optionally restore the database.

    Runs the shipped ``rollback`` playbook: maintenance on, switch (the abandoned release is marked
    failed), restore SNAPSHOT when --with-database is given, cache flush, maintenance off, smoke
    check when ``smoke_url`` is set. Extra variables: php, cms, smoke_url... Exit codes as for
    ``maintkit run``.
    """
    from maintkit.engine.journal import new_run_id

    pairs = [*variables.var]  # after the user's --var: the options win, as they always did
    if to:
        pairs.append(f"rollback_to={to}")
    if with_database:
        pairs.append(f"with_database={with_database}")
    if end_maintenance:
        pairs.append("end_maintenance=true")
    run_id = new_run_id()
    config = load("rollback", where, replace(variables, var=tuple(pairs)), run_id, check=settings.check)
    exit_with(execute(config, run_id, settings))
