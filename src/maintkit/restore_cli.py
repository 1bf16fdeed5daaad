"""``maintkit restore`` and ``maintkit drill``: run the shipped ``restore`` / ``restore-drill`` playbooks
against the target environment, with the source environment's snapshots.

How the source reaches the run: the snapshot lives in the *source* environment's storage, under its
site names, while the playbook runs against the *target* inventory. So the command loads the source
inventory first and passes one extra variable, ``restore_source`` (its environment, sites, storage
targets and hosts: :mod:`maintkit.restore.source`), through a generated vars file (below ``--var``
in precedence, above everything else). Without ``--into`` a restore runs in the source environment
itself and reads its own storage.

``maintkit drill`` also checks, before anything connects, that no drill host resolves to production
(exit 2), and afterwards builds the drill report from the run's journal.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from maintkit.cli_common import EXIT_INVALID, fail_invalid, load_config, with_options


def _source(env: str | None, inventory: str | None) -> dict[str, Any]:
    """The ``restore_source`` value of the source environment (exit 2 when it does not load)."""
    from maintkit.config.inventory import load_inventory
    from maintkit.config.variables import variables_outside_run
    from maintkit.model.problems import InvalidInput
    from maintkit.restore.source import describe_source

    if not env and not inventory:
        raise click.UsageError("give --env ENV (reads inventories/ENV.yml) or -i INVENTORY")
    try:
        source = load_inventory(env, inventory, Path.cwd())
        folder = Path(source.path).parent
        return describe_source(
            source, lambda host: variables_outside_run(host, source, "restore-source", folder)
        )
    except InvalidInput as error:
        fail_invalid(error)


def _execute(
    config: Any, run_id: str, journal_dir: str | None, verbose: int, quiet: bool, options: Any
) -> Any:
    """Run the validated playbook with the console and the journal, as ``maintkit run`` does."""
    from rich.console import Console

    from maintkit.engine.journal import EventBus, JournalSink
    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.engine.runner import Runner
    from maintkit.reporting.console import ConsoleSink

    if not quiet:
        for warning in config.warnings:
            click.echo(f"warning: {warning}", err=True)
    journal = JournalSink(resolve_journal_dir(journal_dir), run_id)
    console = ConsoleSink(Console(highlight=False, emoji=False), -1 if quiet else verbose)
    bus = EventBus(run_id, config.redactor, [journal, console])
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            stop.set()
            bus.emit("interrupt", signal=signal.Signals(signum).name, msg="no new step starts; cleaning up")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    outcome = Runner(config, bus, config.redactor, options, stop).run()
    bus.flush()  # every step line is out before the summary
    console.summary(outcome)
    bus.close()
    return outcome, journal.path


_run_options = [
    click.option(
        "--limit", "-l", multiple=True, help="Only these hosts or groups of the target environment."
    ),
    click.option("--var", multiple=True, metavar="K=V", help="Extra variable (highest precedence)."),
    click.option("--vars-file", multiple=True, type=click.Path(), help="YAML file of extra variables."),
    click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys."),
    click.option("--break-lock", is_flag=True, help="Take a lock older than lock_ttl whose holder is gone."),
    click.option("-v", "--verbose", count=True, help="Show commands and their output."),
    click.option("-q", "--quiet", is_flag=True, help="Print nothing on success."),
    click.option("--journal-dir", type=click.Path(), help="Where run journals (and drill reports) go."),
]


@click.command()
@click.argument("snapshot", default="latest")
@click.option("--env", "-e", "env", help="The environment whose snapshot to restore (inventories/ENV.yml).")
@click.option("-i", "--inventory", help="The source inventory file or folder (instead of --env).")
@click.option("--into", "into", help="Restore into this environment (default: the source itself).")
@click.option("--into-inventory", help="The target inventory file or folder (instead of --into).")
@click.option("--force", is_flag=True, help="Replace databases that are not empty.")
@click.option("--create-database", is_flag=True, help="Create databases that do not exist.")
@with_options(_run_options)
def restore(
    snapshot: str,
    env: str | None,
    inventory: str | None,
    into: str | None,
    into_inventory: str | None,
    force: bool,
    create_database: bool,
    limit: tuple[str, ...],
    var: tuple[str, ...],
    vars_file: tuple[str, ...],
    accept_new_host_keys: bool,
    break_lock: bool,
    verbose: int,
    quiet: bool,
    journal_dir: str | None,
) -> None:
    """Restore SNAPSHOT (an id, or ``latest``) of an environment onto its hosts, or into another one.

    Every artifact is checked while it streams and staged beside the live data; the database and
    files are swapped in only when everything passed. With ``--into``, a target that is the source
    (the same database server and database, or the same real folder, as resolved on the hosts) is
    refused before anything is written: exit 2. Otherwise exit codes as for ``maintkit run``.
    """
    from maintkit.engine.journal import new_run_id
    from maintkit.engine.runner import RunOptions

    extra: dict[str, Any] = {"snapshot": snapshot, "force": force, "create_database": create_database}
    target_env, target_inventory = env, inventory
    if into or into_inventory:
        extra["restore_source"] = _source(env, inventory)
        target_env, target_inventory = into, into_inventory
    elif not env and not inventory:
        raise click.UsageError("give --env ENV (reads inventories/ENV.yml) or -i INVENTORY")
    run_id = new_run_id()
    config = load_config("restore", target_env, target_inventory, limit, var, vars_file, run_id, extra=extra)
    options = RunOptions(accept_new_host_keys=accept_new_host_keys, break_lock=break_lock, argv=sys.argv)
    outcome, path = _execute(config, run_id, journal_dir, verbose, quiet, options)
    if not quiet:
        click.echo(f"journal: {path}")
    sys.exit(int(outcome.exit_code))


@click.command()
@click.option("--env", "-e", "env", help="The environment whose snapshot is drilled (inventories/ENV.yml).")
@click.option("-i", "--inventory", help="The source inventory file or folder (instead of --env).")
@click.option("--into", "into", help="The drill environment (inventories/INTO.yml).")
@click.option("--into-inventory", help="The drill inventory file or folder (instead of --into).")
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id, or latest.")
@click.option("--rto", type=float, help="The recovery time objective, in seconds: slower fails the drill.")
@click.option("--keep", is_flag=True, help="Keep the drill copy (do not clean the drill environment).")
@click.option("--playbook", default="restore-drill", show_default=True, help="The drill playbook.")
@with_options(_run_options)
def drill(
    env: str | None,
    inventory: str | None,
    into: str | None,
    into_inventory: str | None,
    snapshot: str,
    rto: float | None,
    keep: bool,
    playbook: str,
    limit: tuple[str, ...],
    var: tuple[str, ...],
    vars_file: tuple[str, ...],
    accept_new_host_keys: bool,
    break_lock: bool,
    verbose: int,
    quiet: bool,
    journal_dir: str | None,
) -> None:
    """Restore a snapshot into a drill environment, prove it, time it, report it, clean it.

    Prints the path of the HTML report (a JSON one sits beside it). Exit 0 only when the restore,
    the table proof and every smoke check passed within the RTO; 1 otherwise, with the cause;
    2 when the input is invalid or the drill environment resolves to production (nothing ran).
    """
    from maintkit.engine.journal import new_run_id, read_journal
    from maintkit.engine.runner import RunOptions
    from maintkit.reporting.drill_report import build_report, write_report

    if not into and not into_inventory:
        raise click.UsageError("give --into ENV: the drill environment (never production)")
    source = _source(env, inventory)
    run_id = new_run_id()
    extra = {"snapshot": snapshot, "restore_source": source, "keep_drill": keep}
    config = load_config(playbook, into, into_inventory, limit, var, vars_file, run_id, extra=extra)
    refusals = _production_refusals(config, source)
    if refusals:
        for line in refusals:
            click.echo(f"error: {line}", err=True)
        click.echo("refusing to drill into production; nothing ran.", err=True)
        sys.exit(EXIT_INVALID)
    options = RunOptions(accept_new_host_keys=accept_new_host_keys, break_lock=break_lock, argv=sys.argv)
    outcome, path = _execute(config, run_id, journal_dir, verbose, quiet, options)
    report = build_report(list(read_journal(path)), source_env=source["env"], rto=rto, keep=keep)
    json_path, html_path = write_report(report, path.parent, run_id)
    for cause in report["verdict"]["causes"]:
        click.echo(f"drill FAILED: {cause['message']}", err=True)
    if report["verdict"]["passed"] and not quiet:
        click.echo(f"drill passed: {report['verdict']['summary']}")
    click.echo(f"report: {html_path}")
    if not quiet:
        click.echo(f"json: {json_path}")
    code = int(outcome.exit_code)
    sys.exit(0 if report["verdict"]["passed"] else (code if code > 1 else 1))


def _production_refusals(config: Any, source: dict[str, Any]) -> list[str]:
    """Why the drill's hosts resolve to production (empty: none does)."""
    from maintkit.restore.guard import marked_production, production_reasons
    from maintkit.restore.source import RestoreSource, host_place, rendered

    places = RestoreSource.from_value(source).places()
    refusals = []
    for host in config.hosts:
        variables = config.variables[host.name]
        marked = marked_production(rendered(variables, "production"))
        place = host_place(host.name, host, variables)
        for reason in production_reasons(config.inventory.name, place, marked, places):
            refusals.append(f"drill host {host.name} of {config.inventory.name}: {reason}")
    return refusals
