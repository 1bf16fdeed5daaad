"""The one run set-up of every command that runs a playbook (run, restore, drill, rollback).

Why one: each command used to rebuild the event bus, the sinks, the signal handlers and the
monitoring, and each forgot a part (a drill from cron pinged nothing, printed no JSON). Here the
options are declared once (:func:`target_options`, :func:`var_options`, :func:`run_settings`), the
input is loaded and validated once (:func:`load`: exit 2 on problems) and the run is executed once
(:func:`execute`): journal plus console or JSON lines, SIGINT/SIGTERM/SIGHUP, healthcheck, apprise
and metrics, the summary, and the exit code (:func:`exit_with`). Heavy modules are imported inside
the functions so that ``maintkit --help`` stays instant.
"""

from __future__ import annotations

import functools
import gc
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from maintkit.engine.runconfig import RunConfig
    from maintkit.jobs.restore.source import RestoreSource
    from maintkit.model.results import RunOutcome

EXIT_INVALID = 2


# -- the options, declared once -----------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Which environment and hosts: ``--env`` / ``-i`` and ``--limit``."""

    env: str | None = None
    inventory: str | None = None
    limit: tuple[str, ...] = ()

    def require(self) -> Where:
        """This, when it names an environment; a usage error (exit 2) when neither is given."""
        if not self.env and not self.inventory:
            raise click.UsageError("give --env ENV (reads inventories/ENV.yml) or -i INVENTORY")
        return self


@dataclass(frozen=True)
class Vars:
    """Extra variables: ``--vars-file``, then ``-e/--extra-vars`` in order, then ``--var K=V`` (highest)."""

    var: tuple[str, ...] = ()
    vars_file: tuple[str, ...] = ()
    extra_vars: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """How a run runs and reports: the options every playbook-running command shares."""

    check: bool = False
    accept_new_host_keys: bool = False
    break_lock: bool = False
    verbose: int = 0
    quiet: bool = False
    output: str = "text"
    journal_dir: str | None = None
    user: str | None = None
    forks: int | None = None
    override_freeze: bool = False
    reason: str | None = None
    portfolio: str | None = None


_WHERE = [
    click.option("--env", "env", help="Environment: reads inventories/ENV.yml."),
    click.option("-i", "--inventory", help="Inventory file or folder (overrides --env's lookup)."),
    click.option("--limit", "-l", multiple=True, help="Only these hosts or groups (comma-separated)."),
]
_VARS = [
    click.option(
        "-e",
        "--extra-vars",
        multiple=True,
        metavar="VARS",
        help="As in ansible-playbook: K=V [K=V...], @FILE (YAML/JSON) or a JSON mapping; the last wins.",
    ),
    click.option("--var", multiple=True, metavar="K=V", help="Extra variable (highest precedence)."),
    click.option("--vars-file", multiple=True, type=click.Path(), help="YAML file of extra variables."),
]
_CHECK = click.option("--check", is_flag=True, help="Print every command each host would run; run none.")


def _refuse_diff(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Ansible's ``--diff``: refused with the reason and what to use instead (not an unknown option)."""
    if value:
        raise click.UsageError(
            "--diff is not supported: maintkit changes hosts through commands, not file templates, "
            "so there is no per-file diff to show. Use --check to see every command each host would "
            "run; composer updates print the package moves (would move: A 1.0 → 1.1) in --check."
        )


_DIFF = click.option(
    "--diff",
    is_flag=True,
    expose_value=False,
    callback=_refuse_diff,
    help="Not supported (Ansible's --diff): see --check.",
)
_SETTINGS = [
    click.option("--accept-new-host-keys", is_flag=True, help="Trust and record unknown SSH host keys."),
    click.option("--break-lock", is_flag=True, help="Take a lock older than lock_ttl whose holder is gone."),
    click.option("-v", "--verbose", count=True, help="Show commands and their output."),
    click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron)."),
    click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        help="Console format (json: one event a line).",
    ),
    click.option("--journal-dir", type=click.Path(), help="Where run journals go [.maintkit/runs]."),
    click.option(
        "-u",
        "--user",
        metavar="USER",
        help="SSH user of the hosts whose inventory sets none (as in Ansible, the inventory's wins).",
    ),
    click.option(
        "-f",
        "--forks",
        type=click.IntRange(min=1),
        metavar="N",
        help="At most N hosts at once (overrides the playbook's max_parallel).",
    ),
    click.option(
        "--override-freeze",
        is_flag=True,
        help="Update or promote during a freeze window (needs --reason; recorded with the run).",
    ),
    click.option("--reason", metavar="TEXT", help="Why --override-freeze: recorded with the run."),
    click.option(
        "-P",
        "--portfolio",
        "portfolio",
        type=click.Path(dir_okay=False),
        help="The portfolio whose freeze windows apply [portfolio.yml beside inventories/].",
    ),
]


def with_options(options: list[Any]) -> Any:
    """Apply a list of click options to a command, in the order listed."""

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _grouped(name: str, cls: type[Any], options: list[Any]) -> Any:
    """Declare ``options`` on a command and hand them to it as one ``cls`` object named ``name``."""
    names = [f.name for f in fields(cls)]

    def decorate(function: Any) -> Any:
        @functools.wraps(function)
        def command(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = cls(**{n: kwargs.pop(n) for n in names if n in kwargs})
            return function(*args, **kwargs)

        return with_options(options)(command)

    return decorate


def target_options(function: Any) -> Any:
    """``--env``, ``-i``, ``--limit`` as ``where: Where``."""
    return _grouped("where", Where, _WHERE)(function)


def var_options(function: Any) -> Any:
    """``-e/--extra-vars``, ``--var``, ``--vars-file`` as ``variables: Vars``."""
    return _grouped("variables", Vars, _VARS)(function)


def run_settings(*, check: bool) -> Any:
    """The run options (``--check`` only where the command offers it) as ``settings: Settings``."""
    return _grouped("settings", Settings, [_CHECK, _DIFF, *_SETTINGS] if check else [_DIFF, *_SETTINGS])


def split_values(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# -- loading ------------------------------------------------------------------------------------------


def fail_invalid(error: Any, redact: Any = None) -> NoReturn:
    """Print every problem of an InvalidInput, then exit 2: nothing ran."""
    from rich.markup import escape

    from maintkit.reporting.terminal import make_console

    console = make_console(stderr=True)  # no emoji ("pb.yml:100:3" is no :100:), no wrapping in a pipe
    for problem in error.problems:
        text = str(problem)
        console.print(f"[red]error:[/] {escape(redact(text) if redact else text)}", soft_wrap=True)
    count = len(error.problems)
    console.print(f"[red]{count} problem{'s' if count != 1 else ''} found; nothing ran.[/]")
    sys.exit(EXIT_INVALID)


def load(
    playbook: str,
    where: Where,
    variables: Vars,
    run_id: str,
    *,
    check: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Validate a run: playbook, inventory, variables, storage sites and lock settings; exit 2 on problems.

    ``extra`` are the command's own variables (``snapshot``, ``force``...): above the vars files,
    below ``--var``. Values of secret-looking ``--var`` names are masked in the messages.
    """
    where.require()
    with _startup():
        from maintkit.config.extravars import secret_values
        from maintkit.config.validate import load_run
        from maintkit.engine.lockplan import check_lock_settings
        from maintkit.model.problems import InvalidInput
        from maintkit.secrets import Redactor
        from maintkit.storage.sites import check_sites

        try:
            config = load_run(
                playbook,
                where.env,
                where.inventory,
                split_values(where.limit) or None,
                list(variables.var),
                list(variables.vars_file),
                Path.cwd(),
                run_id=run_id,
                check=check,
                extra=extra,
                extra_args=list(variables.extra_vars),
            )
            problems = check_sites(
                config.variables.values(), config.inventory.path, config.redactor, config.origins
            )
            problems += check_lock_settings(config.variables.items(), config.inventory.path, config.redactor)
            if problems:
                raise InvalidInput(problems)
        except InvalidInput as error:
            redactor = Redactor()
            redactor.add(list(_env_values_in(variables.var)) + secret_values(list(variables.extra_vars)))
            fail_invalid(error, redactor)
        if any(host.connection != "local" for host in config.hosts):
            import maintkit.transport.ssh.transport  # noqa: F401  (paramiko & co. load now, collector off)
    return config


def command_line_redactor(var: tuple[str, ...], extra_vars: tuple[str, ...]) -> Any:
    """A Redactor masking the secret-looking values given with ``--var`` and ``-e`` (for messages)."""
    from maintkit.config.extravars import secret_values
    from maintkit.secrets import Redactor

    redactor = Redactor()
    redactor.add(list(_env_values_in(var)) + secret_values(list(extra_vars)))
    return redactor


def _env_values_in(pairs: tuple[str, ...]) -> list[str]:
    """Values given on the command line for secret-looking names, to mask them in error messages."""
    from maintkit.secrets import is_secret_name

    return [p.split("=", 1)[1] for p in pairs if "=" in p and is_secret_name(p.split("=", 1)[0])]


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


# -- executing ----------------------------------------------------------------------------------------

#: called once the run ended and its journal is written: may emit more events (the drill report)
#: and return the outcome that monitoring and the exit code go by (the drill's verdict)
Verdict = Callable[["RunOutcome", Path, Callable[..., None]], "RunOutcome"]


@dataclass
class Execution:
    """What :func:`execute` leaves the command: the final outcome and the journal's path."""

    outcome: RunOutcome
    journal: Path

    @property
    def exit_code(self) -> int:
        return int(self.outcome.exit_code)


def execute(
    config: RunConfig,
    run_id: str,
    settings: Settings,
    *,
    restore_source: RestoreSource | None = None,
    verdict: Verdict | None = None,
    fleet_run: str | None = None,
) -> Execution:
    """Run a validated playbook with the journal, the console or JSON lines, signals and monitoring.

    ``fleet_run``: the id of the ``maintkit fleet run`` this run is one site of; the history then
    records the run with the command ``fleet`` and its journal names the fleet run.
    """
    with _startup():
        from maintkit.engine.journal import EventBus, JournalSink, JsonLinesSink
        from maintkit.engine.journal import journal_dir as resolve_journal_dir
        from maintkit.engine.monitoring import Monitoring
        from maintkit.engine.runner import Runner, RunOptions
        from maintkit.history.location import database_url
        from maintkit.history.sink import HistorySink

    freeze_override = None if settings.check else guard_freeze(config, settings)
    apply_connection_settings(config, settings)
    redactor = config.redactor  # validation collected every secret value already
    bus = EventBus(run_id, redactor)  # its sinks are added below, before the first event
    stop = threading.Event()
    options = RunOptions(
        check=settings.check,
        accept_new_host_keys=settings.accept_new_host_keys,
        break_lock=settings.break_lock,
        argv=sys.argv,
        restore_source=restore_source,
        command=FLEET_SITE_COMMAND if fleet_run else _command_name(),
        freeze_override=freeze_override,
        fleet_run=fleet_run,
    )
    runner = Runner(config, bus, redactor, options, stop)
    runner.start_connecting()  # the SSH handshakes overlap the console and journal set-up below
    with _startup():
        from maintkit.reporting.console import ConsoleSink
        from maintkit.reporting.stdout import on_closed as on_stdout_closed
        from maintkit.reporting.terminal import make_console
    if not settings.quiet:
        for warning in config.warnings:
            click.echo(f"warning: {warning}", err=True)
    journals = resolve_journal_dir(settings.journal_dir)
    journal = JournalSink(journals, run_id)
    console: ConsoleSink | None = None
    sinks: list[Any] = [journal]
    if not settings.check:  # a plan changes nothing: the history records what ran
        sinks.append(HistorySink(database_url(journals), journal.path))
    if settings.output == "json":
        sinks.append(JsonLinesSink(sys.stdout))
    else:
        console = ConsoleSink(make_console(), -1 if settings.quiet else settings.verbose)
        sinks.append(console)
    bus.sinks.extend(sinks)
    on_stdout_closed(lambda: bus.emit("stdout_closed", msg="stdout closed; the run goes on (journal only)"))
    _install_signal_handlers(stop, bus)
    monitoring = Monitoring.from_variables(
        config.inventory.name, config.playbook.name, config.variables.values(), redactor
    )
    monitoring.emit = bus.emit
    started = time.monotonic()
    if not settings.check:
        monitoring.start()
    outcome = final = runner.run()
    bus.flush()  # the journal holds every event, and every step line is out before the summary
    if verdict is not None:
        final = verdict(outcome, journal.path, bus.emit)
    if not settings.check:
        monitoring.finish(final, time.monotonic() - started)
    if console:
        bus.flush()
        console.finish(outcome, journal.path, final.exit_code)
    bus.close()
    if not settings.check:
        from maintkit.cli.trendnotify import report_trends

        report_trends(config, journals, monitoring, settings.quiet, journal.path)
    gc.freeze()  # nothing is needed any more: spare the exit's collections a walk over every object
    return Execution(final, journal.path)


_COMMAND_LINE = "command line"
#: the history's ``command`` of a site's run started by ``maintkit fleet run`` (its own row: ``fleet run``)
FLEET_SITE_COMMAND = "fleet"


def guard_freeze(config: RunConfig, settings: Settings) -> dict[str, Any] | None:
    """Refuse (exit 2, nothing run) a run that updates or promotes a host in a freeze window, unless
    ``--override-freeze --reason`` was given; then return what the journal records of the override.
    """
    from datetime import UTC, datetime

    from maintkit.config.freezeguard import changing_steps, refusals
    from maintkit.config.portfolio import default_portfolio_path, load_portfolio
    from maintkit.model.problems import InvalidInput, Problem

    if settings.reason is not None and not settings.override_freeze:
        fail_invalid(InvalidInput([_cli_problem("--reason", "--reason is the reason of --override-freeze")]))
    if not changing_steps(config):
        return None  # a rollback, backup or drill: never refused, never held up by a broken portfolio
    path = Path(settings.portfolio) if settings.portfolio else default_portfolio_path(Path.cwd())
    try:
        portfolio = load_portfolio(path) if path.is_file() or settings.portfolio else None
    except InvalidInput as error:
        fail_invalid(error)
    found = refusals(config, datetime.now(UTC).date(), portfolio)
    if not found:
        return None
    if not settings.override_freeze:
        from maintkit.cli.commandline import command_line

        retry = command_line({"override_freeze": True, "reason": "WHY"})
        problems = [Problem(_COMMAND_LINE, None, None, "freeze", r.describe()) for r in found]
        problems.append(
            Problem(
                _COMMAND_LINE,
                None,
                None,
                "--override-freeze",
                "updates and promotions are refused during a freeze; rollbacks, backups, verifies and "
                f"drills are not. To run it anyway, give the reason (it is recorded): {retry}",
            )
        )
        fail_invalid(InvalidInput(problems))
    if not (settings.reason or "").strip():
        fail_invalid(InvalidInput([_cli_problem("--reason", '--override-freeze needs --reason "why"')]))
    return {
        "reason": settings.reason,
        "windows": sorted({str(r.window) for r in found}),
        "hosts": [r.host for r in found],
        "steps": found[0].steps,
    }


def _cli_problem(option: str, message: str) -> Any:
    from maintkit.model.problems import Problem

    return Problem(_COMMAND_LINE, None, None, option, message)


def _command_name() -> str | None:
    """The maintkit command being run (``run``, ``drill``...), as the history records it."""
    context = click.get_current_context(silent=True)
    names = []
    while context is not None and context.parent is not None:  # the root's name is how it was started
        names.append(str(context.info_name))
        context = context.parent
    return " ".join(reversed(names)) or None


def apply_connection_settings(config: RunConfig, settings: Settings) -> None:
    """``-u`` for the SSH hosts whose inventory names no user; ``-f`` as the playbook's max_parallel.

    Why ``-u`` below the inventory: an Ansible user expects ``ansible_user`` of a host to win over
    ``-u`` (Ansible's precedence), and a wrong user on one host is a refused login, not a guess.
    """
    if settings.user:
        for host in config.hosts:
            if host.connection == "ssh" and host.user is None:
                host.user = settings.user
    if settings.forks:
        config.playbook.max_parallel = settings.forks


def exit_with(execution: Execution) -> NoReturn:
    """Exit with the run's code (docs: 0 done, 1 rolled back, 2 invalid, 3 rollback failed, 4 locked)."""
    sys.exit(execution.exit_code)


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
