"""``maintkit releases`` and ``maintkit rollback``: the release history of an environment, and going back.

``releases`` connects to each host (read-only: the ``current`` link, ``releases/``, the history
file) and reads the promotable records from storage, so one table answers "what runs where, since
when, and what could be promoted". ``rollback`` is the shipped ``rollback`` playbook run like any
other (lock, journal, exit codes, manual steps on exit 3), with ``--to`` and ``--with-database``
turned into its variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from maintkit.cli_common import fail_invalid, split_values


def _hosts(
    env: str | None, inventory: str | None, limit: tuple[str, ...]
) -> tuple[Any, list[tuple[Any, Any]]]:
    """The inventory and its selected hosts with their variables."""
    from maintkit.config.inventory import load_inventory
    from maintkit.config.variables import host_variables
    from maintkit.model.playbooks import Playbook
    from maintkit.model.problems import InvalidInput

    if not env and not inventory:
        raise click.UsageError("give --env ENV (reads inventories/ENV.yml) or -i INVENTORY")
    try:
        inv = load_inventory(env, inventory, Path.cwd())
    except InvalidInput as error:
        fail_invalid(error)
    hosts = inv.select(split_values(limit)) if limit else list(inv.hosts.values())
    if not hosts:
        raise click.UsageError(f"--limit {','.join(limit)} matches no host of {inv.name}")
    book = Playbook(name="releases", path=str(Path.cwd() / "releases"))
    return inv, [(h, host_variables(h, inv, book, {}, "releases", False)) for h in hosts]


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
@click.option("--env", "-e", "env", help="Environment: reads inventories/ENV.yml.")
@click.option("-i", "--inventory", help="Inventory file or folder.")
@click.option("--limit", "-l", multiple=True, help="Only these hosts or groups.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def releases(
    env: str | None, inventory: str | None, limit: tuple[str, ...], accept_new_host_keys: bool, output: str
) -> None:
    """The releases of each host, newest first: id, time, current, state, promotable.

    Reads the hosts (the ``current`` link, ``releases/``, ``.maintkit/releases.json`` under the
    ``release_root`` variable) and the promotable records in storage; changes nothing.
    """
    from rich.console import Console
    from rich.table import Table

    _inventory, hosts = _hosts(env, inventory, limit)
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
    Console(highlight=False, emoji=False).print(table)


@click.command()
@click.option("--env", "-e", "env", help="Environment: reads inventories/ENV.yml.")
@click.option("-i", "--inventory", help="Inventory file or folder.")
@click.option("--limit", "-l", multiple=True, help="Only these hosts or groups.")
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
@click.option("--var", multiple=True, metavar="K=V", help="Extra variable (php, cms, smoke_url...).")
@click.option("--check", is_flag=True, help="Print what would run; run nothing.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys.")
@click.option("--break-lock", is_flag=True, help="Take a lock older than lock_ttl whose holder is gone.")
@click.option("-v", "--verbose", count=True, help="Show commands and their output.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Console format.")
@click.option("--journal-dir", type=click.Path(), help="Where run journals go [.maintkit/runs].")
@click.pass_context
def rollback(
    ctx: click.Context,
    env: str | None,
    inventory: str | None,
    limit: tuple[str, ...],
    to: str | None,
    with_database: str | None,
    end_maintenance: bool,
    var: tuple[str, ...],
    check: bool,
    accept_new_host_keys: bool,
    break_lock: bool,
    verbose: int,
    quiet: bool,
    output: str,
    journal_dir: str | None,
) -> None:
    """Switch ``current`` back (to RELEASE, or the release before it) and optionally restore the database.

    Runs the shipped ``rollback`` playbook: maintenance on, switch (the abandoned release is marked
    failed), restore SNAPSHOT when --with-database is given, cache flush, maintenance off, smoke
    check when ``smoke_url`` is set. Exit codes as for ``maintkit run``.
    """
    from maintkit.cli import run

    extra = [*var]
    if to:
        extra.append(f"rollback_to={to}")
    if with_database:
        extra.append(f"with_database={with_database}")
    if end_maintenance:
        extra.append("end_maintenance=true")
    ctx.invoke(
        run,
        playbook="rollback",
        env=env,
        inventory=inventory,
        limit=limit,
        var=tuple(extra),
        vars_file=(),
        check=check,
        accept_new_host_keys=accept_new_host_keys,
        break_lock=break_lock,
        verbose=verbose,
        quiet=quiet,
        output=output,
        journal_dir=journal_dir,
    )
