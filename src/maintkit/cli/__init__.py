"""The command line: the ``maintkit`` group, one module per command group beneath it.

``run.py`` (run, validate, actions, runs), ``snapshots.py``, ``restore.py`` (restore, drill) and
``releases.py`` (releases, rollback) define their commands; every command that runs a playbook does so
through :mod:`maintkit.cli.execute`. The command modules import nothing of this one (no cycle).
"""

from __future__ import annotations

import re

import click

from maintkit import __version__
from maintkit.cli.fleet import fleet, worker
from maintkit.cli.history import history
from maintkit.cli.releases import releases, rollback
from maintkit.cli.report import report
from maintkit.cli.restore import drill, restore
from maintkit.cli.run import actions, run, runs, validate
from maintkit.cli.snapshots import snapshots
from maintkit.cli.status import status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="maintkit")
def cli() -> None:
    """Maintenance runs for e-commerce sites: snapshots, restore drills, updates, rollback."""


for _command in (run, validate, actions, runs, snapshots, restore, drill, releases, rollback, fleet, worker):
    cli.add_command(_command)
for _command in (history, status, report):
    cli.add_command(_command)


def _plain(text: str | None) -> str | None:
    """Help text without the docstrings' reST markup: ``latest`` and :mod:`x` read as latest and x."""
    if not text:
        return text
    return re.sub(r":[a-z]+:`([^`]*)`", r"\1", text).replace("``", "")


def _plain_help(command: click.Command) -> None:
    """Strip reST markup from a command's help, its options' help, and its subcommands' (once, at import)."""
    command.help, command.short_help = _plain(command.help), _plain(command.short_help)
    for param in command.params:
        if isinstance(param, click.Option):
            param.help = _plain(param.help)
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


_plain_help(cli)


def main() -> None:
    """The ``maintkit`` program: stdout made safe against a reader that leaves (``| head``), then the CLI."""
    from maintkit.reporting.logs import configure_logging
    from maintkit.reporting.stdout import install

    install()
    configure_logging()
    cli()
