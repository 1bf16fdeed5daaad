"""``maintkit fleet run`` and ``maintkit worker``: one playbook for many sites, here or on Celery workers.

Only parsing and rendering live here: the portfolio is loaded by :mod:`maintkit.cli.portfolio`, the
sites' runs are planned and run by :mod:`maintkit.fleet`, and the view is
:mod:`maintkit.reporting.fleetview`'s.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maintkit.cli.execute import command_line_redactor, fail_invalid
from maintkit.cli.portfolio import load_portfolio_or_exit, portfolio_option

if TYPE_CHECKING:
    from maintkit.fleet.plan import SiteRun
    from maintkit.fleet.process import SiteResult

#: a site's run time limit when none is given: a nightly backup of a large shop fits in it, a hung
#: run does not hold its slot (and its lock) past the next night
DEFAULT_SITE_TIMEOUT = 6 * 3600.0


@click.group()
def fleet() -> None:
    """Run a playbook for many sites of the portfolio at once, each isolated."""


@fleet.command("run")
@click.argument("playbook")
@click.option("--env", "env", required=True, help="The environment to run in every matching site.")
@click.option("--client", help="Only this client's sites.")
@click.option("--site", help="Only this site.")
@portfolio_option
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="At most N sites at once (each site's own hosts run as its playbook says).",
)
@click.option(
    "--timeout",
    "site_timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_SITE_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="A site's run is ended (SIGTERM: rollback, lock released) after this long.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="After the time limit's SIGTERM, how long a site may roll back before it is killed.",
)
@click.option(
    "--workers",
    metavar="REDIS_URL",
    envvar="MAINTKIT_BROKER_URL",
    help="Send each site's run to `maintkit worker` processes through Celery on this Redis.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when every site is done (for cron).")
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: one line per site as it ends.",
)
@click.option("--var", multiple=True, metavar="K=V", help="Extra variable for every site's run.")
@click.option(
    "-e", "--extra-vars", multiple=True, metavar="VARS", help="As maintkit run's -e, for every site."
)
@click.option("--vars-file", multiple=True, type=click.Path(), help="YAML file of extra variables.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys.")
@click.option("-u", "--user", metavar="USER", help="As maintkit run's -u: SSH user of hosts that name none.")
@click.option(
    "-f", "--forks", type=click.IntRange(min=1), metavar="N", help="As maintkit run's -f, in every site."
)
@click.option("--journal-dir", type=click.Path(), help="Where each site's run journal goes [.maintkit/runs].")
@click.option(
    "--override-freeze", is_flag=True, help="As maintkit run's: update during a freeze (needs --reason)."
)
@click.option("--reason", metavar="TEXT", help="Why --override-freeze: recorded with every site's run.")
def fleet_run(
    playbook: str,
    env: str,
    client: str | None,
    site: str | None,
    portfolio: str | None,
    concurrency: int,
    site_timeout: float,
    grace: float,
    workers: str | None,
    quiet: bool,
    output: str,
    var: tuple[str, ...],
    extra_vars: tuple[str, ...],
    vars_file: tuple[str, ...],
    accept_new_host_keys: bool,
    user: str | None,
    forks: int | None,
    journal_dir: str | None,
    override_freeze: bool,
    reason: str | None,
) -> None:
    """Run PLAYBOOK for every site of the portfolio that has environment --env.

    Each site is its own `maintkit run` (its lock, timeouts, rollback, journal); one failing or
    hanging site never stops the others. Exit code: the worst site's (3, then 1, 2, 4, then 0).
    """
    from maintkit.cli.recording import Recording
    from maintkit.engine.journal import new_run_id
    from maintkit.fleet.plan import check_runs, plan_runs, relative
    from maintkit.history.schema import FLEET_COMMAND
    from maintkit.model.problems import InvalidInput

    book = load_portfolio_or_exit(portfolio)
    fleet_id = new_run_id()
    options = [*_pairs("--var", var), *_pairs("-e", extra_vars), *_pairs("--vars-file", vars_file)]
    options += ["--accept-new-host-keys"] if accept_new_host_keys else []
    options += ["--journal-dir", journal_dir] if journal_dir else []
    options += ["--override-freeze"] if override_freeze else []  # each site's run checks its freeze
    options += ["--reason", reason] if reason is not None else []
    options += ["-P", relative(portfolio, Path.cwd())] if portfolio else []  # its freeze windows
    options += ["-u", user] if user else []
    options += ["-f", str(forks)] if forks else []
    options += ["--fleet-run", fleet_id]  # recorded as command `fleet`, naming this fleet run
    try:
        entries = book.select(env, client=client, site=site)
        if not entries:
            raise click.UsageError(f"no site of the portfolio has environment {env!r} (with these filters)")
        runs = plan_runs(entries, playbook, Path.cwd(), options=options, timeout=site_timeout, grace=grace)
        check_runs(runs, Path.cwd(), var, vars_file, extra_vars)
    except InvalidInput as error:
        fail_invalid(error, command_line_redactor(var, extra_vars))
    # the fleet run itself, in the history and a journal of its own: which sites, how it ended
    sites = sorted({entry.site_name for entry in entries})
    record = Recording(FLEET_COMMAND, env, sites, playbook=playbook, folder=journal_dir, run_id=fleet_id)
    from maintkit.transport.openssh import shared_connections

    with shared_connections():  # sites on one account share a master connection (one handshake)
        results = _run(runs, concurrency, workers, quiet, output)
    from maintkit.fleet.process import worst_exit_code

    code = worst_exit_code(results)
    record.finish(code, host_ends=False, error=_not_done(results))
    sys.exit(code)


def _not_done(results: list[SiteResult]) -> str | None:
    """The fleet run's error for the history: how many sites were not done, and which (a few)."""
    bad = [r for r in results if r.status != "done"]
    if not bad:
        return None
    named = ", ".join(f"{r.key} {r.status}" for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return f"{len(bad)} of {len(results)} sites not done: {named}"


def _pairs(flag: str, values: tuple[str, ...]) -> list[str]:
    return [item for value in values for item in (flag, value)]


def _run(
    runs: list[SiteRun], concurrency: int, workers: str | None, quiet: bool, output: str
) -> list[SiteResult]:
    """Run the sites (here, or on Celery workers), showing what ``output``/``quiet`` and the terminal ask."""
    from rich.live import Live

    from maintkit.reporting import fleetview
    from maintkit.reporting.terminal import is_terminal, make_console

    console = make_console()
    started = time.monotonic()
    running_since: dict[str, float] = {}
    printing = threading.Lock()
    results_view: list[Any] = []

    def on_change(result: SiteResult) -> None:
        if result.status == "running":
            running_since.setdefault(result.key, time.monotonic())
        if output == "json" and result.status in fleetview.FINAL:
            with printing:
                fleetview.print_json_line(console, result)

    runner = _runner(runs, concurrency, workers, on_change)
    results_view.extend(runner.results)
    _stop_on_signals(runner.stop)
    live = output == "text" and not quiet and is_terminal()
    if live:
        with Live(
            get_renderable=lambda: fleetview.live_view(runner.results, started, running_since),
            console=console,
            refresh_per_second=4,
            transient=True,
        ):
            results = runner.run()
    else:
        results = runner.run()
    if output == "text":
        failed = [r for r in results if r.status != "done"]
        if not quiet or failed:
            target = console if not quiet else make_console(stderr=True)
            target.print(fleetview.summary_table(results, only_problems=quiet))
            target.print(fleetview.counts_line(results, started))
    return results


def _runner(
    runs: list[SiteRun], concurrency: int, workers: str | None, on_change: Callable[..., None]
) -> Any:
    if workers:
        from maintkit.fleet.remote import RemoteFleet

        return RemoteFleet(runs, workers, concurrency, on_change)
    from maintkit.cli.sitechild import AHEAD_ENV, fleet_spec, fork_server
    from maintkit.fleet.pool import Fleet

    # what every site reads, read once by the fork server (it starts with this environment)
    os.environ[AHEAD_ENV] = fleet_spec(Path.cwd(), [(r.playbook, r.env, r.inventory, r.hosts) for r in runs])
    return Fleet(runs, Path.cwd(), concurrency, on_change, forks=fork_server())


def _stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGINT/SIGTERM/SIGHUP: start no more sites, let the running ones roll back (a second one too)."""

    def handler(signum: int, frame: Any) -> None:
        click.echo(
            f"maintkit fleet: {signal.Signals(signum).name}: no new site starts; running sites roll back",
            err=True,
        )
        stop()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


@click.command()
@click.option(
    "--broker",
    required=True,
    metavar="REDIS_URL",
    envvar="MAINTKIT_BROKER_URL",
    help="The Redis the fleet sends sites to.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="At most N sites at once on this worker.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    help="The project folder (inventories/, playbooks/) the sites' runs start in [.].",
)
@click.option(
    "--visibility-timeout",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="A site not finished by then is given to another worker: longer than any site run "
    "(the fleet's --timeout plus --grace) [7 h].",
)
@click.option("-n", "--name", help="This worker's name (Celery's NAME@HOST) [celery@HOSTNAME].")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(
    broker: str,
    concurrency: int,
    workdir: str,
    visibility_timeout: float | None,
    name: str | None,
    loglevel: str,
) -> None:
    """Run sites sent by `maintkit fleet run --workers REDIS_URL` (a Celery worker on Redis)."""

    from maintkit.cli.sitechild import AHEAD_ENV, fork_server, worker_spec
    from maintkit.fleet.tasks import (
        DEFAULT_VISIBILITY_TIMEOUT,
        WORKDIR_ENV,
        make_app,
        use_fork_server,
        worker_argv,
    )

    os.environ[WORKDIR_ENV] = str(Path(workdir).resolve())
    # the project's inventories, built once by the fork server (it starts with this environment)
    os.environ[AHEAD_ENV] = worker_spec(Path(workdir).resolve())
    app = make_app(broker, visibility_timeout or DEFAULT_VISIBILITY_TIMEOUT)
    use_fork_server(fork_server())
    app.conf.worker_hijack_root_logger = True  # a worker's log is Celery's: tasks received, ready, lost
    from maintkit.transport.openssh import shared_connections

    with shared_connections():  # this worker's sites on one account share a master connection
        app.worker_main(worker_argv(concurrency, name, loglevel))
