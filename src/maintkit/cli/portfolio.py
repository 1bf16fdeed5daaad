"""The portfolio on the command line: ``-P/--portfolio`` declared once, loaded once (exit 2 on problems).

Why here: ``validate``, ``fleet run`` (and ``status``) read the same ``portfolio.yml``; they must find
it in the same place and report its problems the same way as a playbook's (file:line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maintkit.cli.execute import fail_invalid

if TYPE_CHECKING:
    from maintkit.model.portfolio import Portfolio


def portfolio_option(function: Any) -> Any:
    """``-P/--portfolio FILE`` as ``portfolio: str | None`` (None: ``portfolio.yml`` here)."""
    return click.option(
        "-P",
        "--portfolio",
        "portfolio",
        type=click.Path(dir_okay=False),
        help="The portfolio (clients, sites, environments) [portfolio.yml beside inventories/].",
    )(function)


def load_portfolio_or_exit(path: str | None, *, check_inventories: bool = False) -> Portfolio:
    """The portfolio at ``path`` (default ``./portfolio.yml``); print every problem and exit 2 on any.

    ``check_inventories`` also loads every inventory it names and finds each site in it.
    """
    from maintkit.config import portfolio as loader
    from maintkit.model.problems import InvalidInput

    cwd = Path.cwd()
    file = Path(path) if path else loader.default_portfolio_path(cwd)
    try:
        portfolio = loader.load_portfolio(file, cwd)
        if check_inventories:
            problems = loader.check_inventories(portfolio, cwd)
            if problems:
                raise InvalidInput(problems)
    except InvalidInput as error:
        fail_invalid(error)
    return portfolio
