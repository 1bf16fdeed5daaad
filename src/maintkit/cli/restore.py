"""``maintkit restore`` and ``maintkit drill``: run the shipped ``restore`` / ``restore-drill`` playbooks
against the target environment, with the source environment's snapshots.

How the source reaches the run: the snapshot lives in the *source* environment's storage, under its
site names, while the playbook runs against the *target* inventory. So the command loads the source
inventory first and builds one :class:`~maintkit.jobs.restore.source.RestoreSource` (its environment,
sites, storage targets and hosts), which the run hands to the ``restore`` and ``drill_cleanup``
actions as it is (``RunOptions.restore_source`` -> ``StepContext.restore_source``): no variable, no
template, no second parse. Without ``--into`` a restore runs in the source environment itself and
reads its own storage. Both commands run through :func:`maintkit.cli.execute.execute`: journal,
console or ``--output json``, signals and monitoring (healthcheck, notify, metrics) as ``maintkit run``.

``maintkit drill`` also checks, before anything connects, that no drill host resolves to production
(exit 2), and afterwards builds the drill report from the run's journal.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maintkit.cli.execute import (
    EXIT_INVALID,
    Settings,
    Vars,
    Where,
    execute,
    exit_with,
    fail_invalid,
    load,
    run_settings,
    target_options,
    var_options,
)

if TYPE_CHECKING:
    from maintkit.jobs.restore.source import RestoreSource
    from maintkit.model.results import RunOutcome
    from maintkit.secrets import Redactor


_TARGET = click.option(
    "--target",
    "target",
    metavar="NAME",
    help="Read the snapshot from this storage target of the source (default: the first holding it).",
)


def print_other_copies(outcome: RunOutcome, snapshot_param: str, redactor: Redactor) -> None:
    """After a restore whose copy was damaged: the command that reads another target holding it.

    Why printed by the CLI: the restore knows which targets hold the snapshot, only the command line
    knows how the user started it; the command is the user's own with ``--target`` and the concrete
    snapshot id (``latest`` may have moved on by then), and works as printed — unless it carried a
    secret (``--var db_password=…``), which is masked like everywhere else, and said so.
    """
    from maintkit.cli.commandline import command_line

    several = len(outcome.hosts) > 1
    for host in outcome.hosts:
        for step in host.steps:
            data = step.result.data if step.action == "restore" and step.failed else {}
            others = data.get("other_targets") or []
            if not others:
                continue
            changes: dict[str, Any] = {snapshot_param: data["snapshot_id"], "target": others[0]}
            if several:
                changes["limit"] = (host.host,)
            command = command_line(changes)
            shown = redactor(command)
            masked = " (secret values are masked: give them as you did)" if shown != command else ""
            click.echo(
                f"{host.host}: the copy in target {data.get('storage_target')} is damaged; "
                f"snapshot {data['snapshot_id']} is also in {', '.join(others)}. Restore from "
                f"{others[0]} with{masked}:\n  {shown}",
                err=True,
            )


def _source(where: Where) -> RestoreSource:
    """The source environment, built once from its inventory (exit 2 when it does not load)."""
    from maintkit.config.inventory import load_inventory
    from maintkit.config.variables import host_vars
    from maintkit.jobs.restore.source import RestoreSource, describe_source
    from maintkit.model.problems import InvalidInput

    where.require()
    try:
        inventory = load_inventory(where.env, where.inventory, Path.cwd())
    except InvalidInput as error:
        fail_invalid(error)
    return RestoreSource.from_value(describe_source(inventory, lambda host: host_vars(inventory, host)))


@click.command()
@click.argument("snapshot", default="latest")
@target_options
@click.option("--into", "into", help="Restore into this environment (default: the source itself).")
@click.option("--into-inventory", help="The target inventory file or folder (instead of --into).")
@click.option("--force", is_flag=True, help="Replace databases that are not empty.")
@click.option("--create-database", is_flag=True, help="Create databases that do not exist.")
@click.option(
    "--definers",
    type=click.Choice(["keep", "current"]),
    help="current: drop the dump's DEFINER clauses (views, routines, triggers become the restoring "
    "user's) [default: keep, or the inventory's definers].",
)
@_TARGET
@var_options
@run_settings(check=True)
def restore(
    snapshot: str,
    where: Where,
    into: str | None,
    into_inventory: str | None,
    force: bool,
    create_database: bool,
    definers: str | None,
    target: str | None,
    variables: Vars,
    settings: Settings,
) -> None:
    """Restore SNAPSHOT (an id, or ``latest``) of an environment (--env) onto its hosts, or into another one.

    Every artifact is checked while it streams and staged beside the live data; the database and
    files are swapped in only when everything passed. With ``--into``, a target that is the source
    (the same database server and database, or the same real folder, as resolved on the hosts) is
    refused before anything is written: exit 2. --limit selects hosts of the target. --target reads
    one storage target (when a copy is damaged, the error names the others holding the snapshot and
    prints the command that reads one). --check prints the plan and contacts no host. Otherwise exit
    codes as for ``maintkit run``.
    """
    from maintkit.engine.journal import new_run_id

    extra: dict[str, Any] = {"snapshot": snapshot, "force": force, "create_database": create_database}
    if definers:  # only when given: the inventory's ``definers`` stays in force otherwise
        extra["definers"] = definers
    if target:
        extra["restore_target"] = target
    source, into_where = None, where.require()
    if into or into_inventory:
        source = _source(where)
        into_where = Where(into, into_inventory, where.limit)
    run_id = new_run_id()
    config = load("restore", into_where, variables, run_id, check=settings.check, extra=extra)
    done = execute(config, run_id, settings, restore_source=source)
    print_other_copies(done.outcome, "snapshot", config.redactor)
    exit_with(done)


@click.command()
@target_options
@click.option("--into", "into", help="The drill environment (inventories/INTO.yml).")
@click.option("--into-inventory", help="The drill inventory file or folder (instead of --into).")
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id, or latest.")
@click.option("--rto", type=float, help="The recovery time objective, in seconds: slower fails the drill.")
@click.option("--keep", is_flag=True, help="Keep the drill copy (do not clean the drill environment).")
@click.option("--playbook", default="restore-drill", show_default=True, help="The drill playbook.")
@_TARGET
@var_options
@run_settings(check=True)
def drill(
    where: Where,
    into: str | None,
    into_inventory: str | None,
    snapshot: str,
    rto: float | None,
    keep: bool,
    playbook: str,
    target: str | None,
    variables: Vars,
    settings: Settings,
) -> None:
    """Restore a snapshot of --env into a drill environment, prove it, time it, report it, clean it.

    Prints the path of the HTML report (a JSON one sits beside it; with ``--output json`` a
    ``drill_report`` event carries both). Exit 0 only when the restore, the table proof and every
    smoke check passed within the RTO; 1 otherwise, with the cause; 2 when the input is invalid or
    the drill environment resolves to production (nothing ran). --limit selects drill hosts.
    --target reads one storage target (drill the offsite copy, or fall back to another one: a
    damaged copy's error prints the command). --check prints the plan; no host is contacted.
    """
    from maintkit.engine.journal import new_run_id

    if not into and not into_inventory:
        raise click.UsageError("give --into ENV: the drill environment (never production)")
    source = _source(where)
    run_id = new_run_id()
    extra: dict[str, Any] = {"snapshot": snapshot, "keep_drill": keep}
    if target:
        extra["restore_target"] = target
    into_where = Where(into, into_inventory, where.limit)
    config = load(playbook, into_where, variables, run_id, check=settings.check, extra=extra)
    refusals = _production_refusals(config, source)
    if refusals:
        for line in refusals:
            click.echo(f"error: {line}", err=True)
        click.echo("refusing to drill into production; nothing ran.", err=True)
        sys.exit(EXIT_INVALID)
    if settings.check:  # a plan: nothing restored, nothing to judge or report
        exit_with(execute(config, run_id, settings, restore_source=source))
    verdict = _DrillVerdict(source.env, rto, keep, run_id)
    done = execute(config, run_id, settings, restore_source=source, verdict=verdict)
    verdict.print(settings)
    print_other_copies(done.outcome, "snapshot", config.redactor)
    exit_with(done)


class _DrillVerdict:
    """After the drill ran: its report (files beside the journal, a ``drill_report`` event) and exit code.

    Why a verdict and not a mere exit code: monitoring must ping failure for a drill that restored
    but missed its RTO, so the verdict decides the outcome before the monitoring hooks run.
    """

    def __init__(self, source_env: str, rto: float | None, keep: bool, run_id: str) -> None:
        self.source_env, self.rto, self.keep, self.run_id = source_env, rto, keep, run_id
        self.report: dict[str, Any] = {}
        self.paths: tuple[Path, Path] | None = None

    def __call__(self, outcome: RunOutcome, journal: Path, emit: Any) -> RunOutcome:
        from maintkit.engine.journal import read_journal
        from maintkit.model.results import ExitCode
        from maintkit.reporting.drill_report import build_report, write_report

        events = list(read_journal(journal))
        self.report = build_report(events, source_env=self.source_env, rto=self.rto, keep=self.keep)
        json_path, html_path = self.paths = write_report(self.report, journal.parent, self.run_id)
        verdict = self.report["verdict"]
        emit(
            "drill_report",
            passed=verdict["passed"],
            summary=verdict["summary"],
            causes=[cause["message"] for cause in verdict["causes"]],
            report=str(html_path),
            json=str(json_path),
            source_env=self.source_env,
            rto_objective_seconds=self.report["rto_objective_seconds"],
            rto_seconds=self.report["rto_seconds"],
            hosts=[
                {
                    "host": h["host"],
                    "site": h["site"],
                    "snapshot_id": h["snapshot_id"],
                    "rto_seconds": h["rto_seconds"],
                    "data_loss_window_seconds": h["data_loss_window_seconds"],
                }
                for h in self.report["hosts"]
            ],
        )
        code = int(outcome.exit_code)
        final = ExitCode(0 if verdict["passed"] else (code if code > 1 else 1))
        return replace(outcome, exit_code_override=final)

    def print(self, settings: Settings) -> None:
        """The text lines of the verdict (with ``--output json`` the ``drill_report`` event said it)."""
        verdict = self.report["verdict"]
        for cause in verdict["causes"]:
            click.echo(f"drill FAILED: {cause['message']}", err=True)
        if settings.output == "json" or self.paths is None:
            return
        json_path, html_path = self.paths
        if verdict["passed"] and not settings.quiet:
            click.echo(f"drill passed: {verdict['summary']}")
        click.echo(f"report: {html_path}")
        if not settings.quiet:
            click.echo(f"json: {json_path}")


def _production_refusals(config: Any, source: RestoreSource) -> list[str]:
    """Why the drill's hosts resolve to production (empty: none does)."""
    from maintkit.jobs.restore.guard import marked_production, production_reasons
    from maintkit.jobs.restore.source import host_place, rendered

    places = source.places()
    refusals = []
    for host in config.hosts:
        variables = config.variables[host.name]
        marked = marked_production(rendered(variables, "production"))
        place = host_place(host.name, host, variables)
        for reason in production_reasons(config.inventory.name, place, marked, places):
            refusals.append(f"drill host {host.name} of {config.inventory.name}: {reason}")
    return refusals
