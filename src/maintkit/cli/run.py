"""``maintkit run``, ``validate``, ``actions`` and ``runs``: running a playbook and reading the journal.

Only parsing and rendering live here (pyinfra's split): every decision is made in ``config`` and
``engine``; the run set-up is :mod:`maintkit.cli.execute`'s. Heavy modules are imported inside the
commands so ``maintkit --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    target_options,
    var_options,
)
from maintkit.cli.portfolio import load_portfolio_or_exit, portfolio_option

if TYPE_CHECKING:
    from maintkit.engine.runconfig import RunConfig


@click.command()
@click.argument("playbook")
@target_options
@var_options
@run_settings(check=True)
@click.option("--list-hosts", is_flag=True, help="Print the hosts the run would target; run nothing.")
@click.option("--tags", "-t", multiple=True, metavar="TAGS", help="Only the steps with these tags (a,b).")
@click.option("--skip-tags", multiple=True, metavar="TAGS", help="Not the steps with these tags (a,b).")
@click.option("--fleet-run", hidden=True, metavar="RUN_ID", help="Set by `maintkit fleet run` for its sites.")
def run(
    playbook: str,
    where: Where,
    variables: Vars,
    settings: Settings,
    list_hosts: bool,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    fleet_run: str | None,
) -> None:
    """Run PLAYBOOK against an environment.

    Exit codes: 0 done; 1 failed and rolled back cleanly; 2 invalid input, nothing ran;
    3 failed and the rollback failed or was incomplete (a human must look); 4 another run holds the lock.
    """
    from maintkit.engine.journal import new_run_id

    run_id = new_run_id()
    config = load(playbook, where, variables, run_id, check=settings.check or list_hosts)
    _select_steps(config, list(tags), list(skip_tags))
    if list_hosts:
        _print_hosts(config)
        return
    exit_with(execute(config, run_id, settings, fleet_run=fleet_run))


def _select_steps(config: RunConfig, tags: list[str], skip_tags: list[str]) -> None:
    """Apply ``--tags``/``--skip-tags`` (and Ansible's ``never`` tag); exit 2 on a tag no step has."""
    from maintkit.config.tags import select_steps
    from maintkit.model.problems import InvalidInput

    try:
        select_steps(config.playbook, tags, skip_tags)
    except InvalidInput as error:
        fail_invalid(error)


def _print_hosts(config: RunConfig) -> None:
    """``--list-hosts`` as ``ansible-playbook`` prints it: the play, then its hosts, one a line."""
    click.echo(
        f"playbook: {config.playbook.name} ({config.playbook.path}), environment {config.inventory.name}"
    )
    click.echo(f"  hosts ({len(config.hosts)}):")
    for host in config.hosts:
        click.echo(f"    {host.name}")


@click.command()
@click.argument("playbook", required=False)
@target_options
@var_options
@portfolio_option
def validate(playbook: str | None, where: Where, variables: Vars, portfolio: str | None) -> None:
    """Check PLAYBOOK and the inventory without connecting anywhere (exit 2 on problems).

    Without PLAYBOOK, check the whole portfolio (-P, default portfolio.yml): its structure and
    objectives, every inventory it names, and each site in its inventory.
    """
    if playbook is None or (portfolio and not (where.env or where.inventory)):
        if playbook is not None:
            raise click.UsageError("give PLAYBOOK with --env ENV or -i INVENTORY, or -P alone")
        _validate_portfolio(portfolio)
        return
    if portfolio:
        _validate_portfolio(portfolio)
    config = load(playbook, where, variables, "validate")
    book = config.playbook
    steps = len(book.steps) + len(book.rollback) + len(book.always)
    click.echo(
        f"ok: playbook {book.name!r} ({book.path}): {steps} step(s) on {len(config.hosts)} host(s) "
        f"of {config.inventory.name!r}"
    )


def _validate_portfolio(path: str | None) -> None:
    """Load the portfolio and every inventory it names (exit 2 on any problem); say what it holds."""
    book = load_portfolio_or_exit(path, check_inventories=True)
    entries = book.entries()
    sites = {(e.client, e.site) for e in entries}
    envs = sorted({e.env for e in entries})
    click.echo(
        f"ok: portfolio {book.path}: {len(book.clients)} client(s), {len(sites)} site(s), "
        f"{len(entries)} site environment(s) ({', '.join(envs)})"
    )


@click.command()
@click.argument("name", required=False)
def actions(name: str | None) -> None:
    """List the actions, or show one action's parameters."""
    from rich.table import Table

    from maintkit.actions.base import available_actions, get_action
    from maintkit.reporting.params import describe_params
    from maintkit.reporting.terminal import make_console

    console = make_console()
    if name is None:
        table = Table("action", "summary", show_edge=False)
        for action_name in available_actions():
            action = get_action(action_name)
            if action:
                table.add_row(action_name, action.summary)
        console.print(table)
        return
    action = get_action(name)
    if action is None:
        raise click.UsageError(f"no action named {name!r}; see 'maintkit actions'")
    console.print(f"[bold]{action.name}[/]: {action.summary}")
    if action.shorthand:
        console.print(f"A plain value stands for [bold]{action.shorthand}[/]: {action.name}: VALUE")
    table = Table("parameter", "type", "default", "description", show_edge=False)
    for row in describe_params(action.Params):
        table.add_row(*row)
    console.print(table)


@click.group()
def runs() -> None:
    """The journal of past runs."""


def _journals_newest_first(folder: Path) -> list[Path]:
    """Journal files, newest first (by id, then write time: ids of one second differ only by a suffix)."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"), key=lambda p: (p.name[:16], p.stat().st_mtime_ns), reverse=True)


@runs.command("list")
@click.option("--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs].")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("-n", "--last", default=20, show_default=True, help="How many runs.")
def runs_list(journal_dir: str | None, output: str, last: int) -> None:
    """List recent runs, newest first."""
    import json

    from rich.table import Table

    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.engine.journal import summarize_run
    from maintkit.reporting.terminal import make_console

    folder = resolve_journal_dir(journal_dir)
    paths = _journals_newest_first(folder)[:last]
    summaries = [summarize_run(p) for p in paths]
    if output == "json":
        for summary in summaries:
            click.echo(json.dumps(summary))
        return
    table = Table("run", "playbook", "env", "hosts", "status", "exit", "duration", show_edge=False)
    for s in summaries:
        table.add_row(
            s["run_id"],
            str(s.get("playbook")),
            str(s.get("env")),
            str(s.get("hosts", "")),
            str(s["status"]) + (" (check)" if s.get("check") else ""),
            str(s.get("exit_code", "")),
            f"{s['duration']:.2f}s" if s.get("duration") is not None else "",
        )
    make_console().print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs].")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("-v", "--verbose", count=True, help="Also the commands (heredocs included) and their output.")
def runs_show(run_id: str, journal_dir: str | None, output: str, verbose: int) -> None:
    """Show one run as its console showed it (``latest`` for the newest); -v adds commands and output."""
    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.engine.journal import read_journal
    from maintkit.reporting.console import ConsoleSink
    from maintkit.reporting.terminal import make_console

    folder = resolve_journal_dir(journal_dir)
    if run_id == "latest":
        paths = _journals_newest_first(folder)
        if not paths:
            raise click.ClickException(f"no runs in {folder}")
        path = paths[0]
    else:
        path = folder / f"{Path(run_id).name}.jsonl"
        if not path.is_file():
            raise click.ClickException(f"no run {run_id!r} in {folder}")
    if output == "json":
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return
    sink = ConsoleSink(make_console(), verbosity=verbose)
    for event in read_journal(path):
        sink.handle(event)
