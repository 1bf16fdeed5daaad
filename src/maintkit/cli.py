"""The command line: parse, call config/engine, render, exit with the code cron reads.

Only parsing and rendering live here (pyinfra's split): every decision is made in ``config`` and
``engine``. Heavy modules are imported inside the commands so ``maintkit --help`` stays instant.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from maintkit import __version__
from maintkit.cli_common import load_config, with_options
from maintkit.releases_cli import releases, rollback
from maintkit.restore_cli import drill, restore
from maintkit.snapshots_cli import snapshots


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maintkit")
def cli() -> None:
    """Maintenance runs for e-commerce sites: snapshots, restore drills, updates, rollback."""


run_options = [
    click.option("--env", "-e", "env", help="Environment: reads inventories/ENV.yml."),
    click.option("-i", "--inventory", help="Inventory file or folder (overrides --env's lookup)."),
    click.option("--limit", "-l", multiple=True, help="Only these hosts or groups (comma-separated)."),
    click.option("--var", multiple=True, metavar="K=V", help="Extra variable (highest precedence)."),
    click.option("--vars-file", multiple=True, type=click.Path(), help="YAML file of extra variables."),
]


@cli.command()
@click.argument("playbook")
@with_options(run_options)
@click.option("--check", is_flag=True, help="Print every command each host would run; run none.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys.")
@click.option("--break-lock", is_flag=True, help="Take a lock older than lock_ttl whose holder is gone.")
@click.option("-v", "--verbose", count=True, help="Show commands and their output.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Console format.")
@click.option("--journal-dir", type=click.Path(), help="Where run journals go [.maintkit/runs].")
def run(
    playbook: str,
    env: str | None,
    inventory: str | None,
    limit: tuple[str, ...],
    var: tuple[str, ...],
    vars_file: tuple[str, ...],
    check: bool,
    accept_new_host_keys: bool,
    break_lock: bool,
    verbose: int,
    quiet: bool,
    output: str,
    journal_dir: str | None,
) -> None:
    """Run PLAYBOOK against an environment.

    Exit codes: 0 done; 1 failed and rolled back cleanly; 2 invalid input, nothing ran;
    3 failed and the rollback failed or was incomplete (a human must look); 4 another run holds the lock.
    """
    with _startup():
        from maintkit.engine.journal import EventBus, JournalSink, JsonLinesSink, new_run_id
        from maintkit.engine.journal import journal_dir as resolve_journal_dir
        from maintkit.engine.monitoring import Monitoring
        from maintkit.engine.runner import Runner, RunOptions

        run_id = new_run_id()
        config = load_config(playbook, env, inventory, limit, var, vars_file, run_id, check=check)
        if any(host.connection != "local" for host in config.hosts):
            import maintkit.transport.ssh.transport  # noqa: F401  (paramiko & co. load now, collector off)
    redactor = config.redactor  # validation collected every secret value already
    bus = EventBus(run_id, redactor)  # its sinks are added below, before the first event
    stop = threading.Event()
    options = RunOptions(
        check=check, accept_new_host_keys=accept_new_host_keys, break_lock=break_lock, argv=sys.argv
    )
    runner = Runner(config, bus, redactor, options, stop)
    runner.start_connecting()  # the SSH handshakes overlap the console and journal set-up below
    with _startup():
        from rich.console import Console

        from maintkit.reporting.console import ConsoleSink
        from maintkit.reporting.stdout import on_closed as on_stdout_closed
    _print_warnings(config.warnings, quiet)
    journal = JournalSink(resolve_journal_dir(journal_dir), run_id)
    console_sink: ConsoleSink | None = None
    sinks: list[Any] = [journal]
    if output == "json":
        sinks.append(JsonLinesSink(sys.stdout))
    else:
        console_sink = ConsoleSink(Console(highlight=False, emoji=False), -1 if quiet else verbose)
        sinks.append(console_sink)
    bus.sinks.extend(sinks)
    on_stdout_closed(lambda: bus.emit("stdout_closed", msg="stdout closed; the run goes on (journal only)"))
    _install_signal_handlers(stop, bus)
    monitoring = Monitoring.from_variables(
        config.inventory.name, config.playbook.name, config.variables.values(), redactor
    )
    monitoring.emit = bus.emit
    started = time.monotonic()
    if not check:
        monitoring.start()
    outcome = runner.run()
    if not check:
        monitoring.finish(outcome, time.monotonic() - started)
    if console_sink:
        bus.flush()  # every step line is out before the summary
        console_sink.summary(outcome)
        if not quiet:
            console_sink.console.print(f"[dim]journal: {journal.path}[/]")
    bus.close()
    gc.freeze()  # nothing is needed any more: spare the exit's collections a walk over every object
    sys.exit(int(outcome.exit_code))


@contextmanager
def _startup() -> Iterator[None]:
    """Collect no garbage while the heavy modules load and the run is validated, then freeze it all.

    Why: importing pydantic, paramiko, jinja2 and rich allocates a few hundred thousand objects that
    live until exit, and the collector kept walking them while they piled up: about a quarter of
    ``maintkit run``'s start-up (docs/performance.md). Frozen, later collections skip them.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _print_warnings(warnings: list[Any], quiet: bool) -> None:
    if quiet:
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _install_signal_handlers(stop: threading.Event, bus: Any) -> None:
    """SIGINT/SIGTERM/SIGHUP: start no new step, roll back the hosts that started, release the lock.

    SIGHUP is the terminal or the SSH session that started the run going away: the same interrupt,
    recorded as such (``run_end status: interrupted``), instead of dying half-way without a rollback.
    """

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            stop.set()
            bus.emit("interrupt", signal=name, msg="no new step starts; rollback and always run, then exit")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


@cli.command()
@click.argument("playbook")
@with_options(run_options)
def validate(
    playbook: str,
    env: str | None,
    inventory: str | None,
    limit: tuple[str, ...],
    var: tuple[str, ...],
    vars_file: tuple[str, ...],
) -> None:
    """Check PLAYBOOK and the inventory without connecting anywhere (exit 2 on problems)."""
    config = load_config(playbook, env, inventory, limit, var, vars_file, "validate")
    book = config.playbook
    steps = len(book.steps) + len(book.rollback) + len(book.always)
    click.echo(
        f"ok: playbook {book.name!r} ({book.path}): {steps} step(s) on {len(config.hosts)} host(s) "
        f"of {config.inventory.name!r}"
    )


@cli.command()
@click.argument("name", required=False)
def actions(name: str | None) -> None:
    """List the actions, or show one action's parameters."""
    from rich.console import Console
    from rich.table import Table

    from maintkit.actions.base import available_actions, get_action
    from maintkit.reporting.params import describe_params

    console = Console(highlight=False, emoji=False)
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


@cli.group()
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

    from rich.console import Console
    from rich.table import Table

    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.engine.journal import summarize_run

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
    Console(highlight=False, emoji=False).print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs].")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def runs_show(run_id: str, journal_dir: str | None, output: str) -> None:
    """Show every event of one run (``latest`` for the newest)."""
    from rich.console import Console

    from maintkit.engine.journal import journal_dir as resolve_journal_dir
    from maintkit.engine.journal import read_journal
    from maintkit.reporting.console import ConsoleSink

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
    sink = ConsoleSink(Console(highlight=False, emoji=False), verbosity=1)
    for event in read_journal(path):
        sink.handle(event)


cli.add_command(snapshots)
cli.add_command(restore)
cli.add_command(drill)
cli.add_command(releases)
cli.add_command(rollback)


def main() -> None:
    """The ``maintkit`` program: stdout made safe against a reader that leaves (``| head``), then the CLI."""
    from maintkit.reporting.logs import configure_logging
    from maintkit.reporting.stdout import install

    install()
    configure_logging()
    cli()
