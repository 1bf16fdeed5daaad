"""Which steps of a run a freeze window refuses, on which hosts, and why.

Why a guard before the run and not a check inside the actions: a freeze must refuse an update
before the first command (maintenance mode on, a release prepared) has run; the rule is taken from
the actions themselves (:meth:`Action.changes_production`), so a custom playbook that updates is
refused as the shipped ``update-*`` ones are, and a rollback playbook never is.

Where windows come from, all of them applying: the ``freeze`` variable of a host (inventory,
group, vars file) and the ``freeze`` of the host's site environment in the portfolio (when a
``portfolio.yml`` is in the working folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from maintkit.actions.base import get_action
from maintkit.config.freeze import parse_freeze
from maintkit.engine.runconfig import RunConfig
from maintkit.model.freeze import FreezeWindow, active_window
from maintkit.model.portfolio import Portfolio
from maintkit.storage.sites import site_name
from maintkit.text.templating import HostVars, render


@dataclass(frozen=True)
class Refusal:
    """One host in a freeze: the window covering today, where it was set, the steps it refuses."""

    host: str
    window: FreezeWindow
    source: str
    steps: list[str] = field(default_factory=list)

    def describe(self) -> str:
        steps = ", ".join(f"'{s}'" for s in self.steps)
        return f"host {self.host} is in the freeze window {self.window} set in {self.source}: steps {steps}"


def changing_steps(config: RunConfig) -> list[str]:
    """The names of the main steps that update or promote production (rollback/always never do)."""
    names = []
    for step in config.playbook.steps:
        action = get_action(step.action)
        if action is not None and action.changes_production(step.params):
            names.append(step.name or step.action)
    return names


def portfolio_windows(portfolio: Portfolio | None, env: str) -> dict[str, tuple[FreezeWindow, ...]]:
    """Site name in the inventory -> its freeze windows, for the site environments of ``env``."""
    if portfolio is None:
        return {}
    entries = [e for e in portfolio.entries() if e.env == env and e.objectives.freeze]
    return {e.site_name: e.objectives.freeze for e in entries}


def refusals(
    config: RunConfig,
    today: date,
    portfolio: Portfolio | None = None,
) -> list[Refusal]:
    """Every selected host that is in a freeze today, when the playbook changes production."""
    steps = changing_steps(config)
    if not steps:
        return []
    by_site = portfolio_windows(portfolio, config.inventory.name)
    found = []
    for host in config.hosts:
        variables = config.variables[host.name]
        for source, windows in _windows(config, host.name, variables, by_site, portfolio):
            window = active_window(windows, today)
            if window is not None:
                found.append(Refusal(host.name, window, source, steps))
                break
    return found


def _windows(
    config: RunConfig,
    host: str,
    variables: HostVars,
    by_site: dict[str, tuple[FreezeWindow, ...]],
    portfolio: Portfolio | None,
) -> list[tuple[str, list[FreezeWindow]]]:
    sources: list[tuple[str, list[FreezeWindow]]] = []
    if "freeze" in variables:
        value: Any = dict.__getitem__(variables, "freeze")  # as written; rendered when a template
        if "freeze" in variables.templated:
            value = render(value, variables, config.redactor)
        where = config.origins.get(host, {}).get("freeze")
        place = f"{where.file}:{where.line}" if where is not None and where.line else "the variables"
        sources.append((f"variable 'freeze' ({place})", parse_freeze(value)[0]))
    site = site_name(variables)
    if portfolio is not None and site in by_site:
        sources.append((f"the portfolio ({portfolio.path}, site '{site}')", list(by_site[site])))
    return sources
