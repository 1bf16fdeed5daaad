"""What one site's run of a fleet is: the ``maintkit run`` command line, as data that can travel.

Why a command line and not a call into the engine: each site runs as its own ``maintkit run``
process (see :mod:`maintkit.fleet.process`), so everything ``maintkit run`` guarantees (validation,
the per-site lock, step timeouts, rollback, the journal, signals) holds for each site unchanged, and
a Celery worker on another machine runs exactly the same thing. A :class:`SiteRun` is plain JSON-able
data for that reason; paths in it are relative to the project folder when they are inside it, so
a worker whose checkout of the project lives elsewhere finds the same files.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maintkit.config.portfolio import load_entry_inventory, sites_of
from maintkit.model.hosts import Host
from maintkit.model.portfolio import SiteEnvironment
from maintkit.model.problems import InvalidInput, Problem


@dataclass(frozen=True)
class SiteRun:
    """One site environment's run: which playbook, inventory, hosts, options, and its time limit.

    ``options`` are ``maintkit run`` options passed through as given (``--var``, ``-e``, ...);
    ``timeout`` (seconds) ends the run with SIGTERM (it rolls back and releases its lock), then
    ``grace`` seconds later kills it.
    """

    key: str
    client: str
    site: str
    env: str
    playbook: str
    inventory: str
    hosts: list[str]
    options: list[str] = field(default_factory=list)
    timeout: float | None = None
    grace: float = 60.0

    def command(self, python: str | None = None) -> list[str]:
        """The argv of this site's ``maintkit run`` (JSON events on stdout, read by the fleet)."""
        return [
            python or sys.executable,
            "-m",
            "maintkit",
            "run",
            self.playbook,
            "--env",
            self.env,
            "-i",
            self.inventory,
            "--limit",
            ",".join(self.hosts),
            "--output",
            "json",
            *self.options,
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteRun:
        return cls(**data)


def relative(path: str | Path, cwd: Path) -> str:
    """``path`` relative to the project folder ``cwd`` when inside it (a worker finds it), else as is."""
    try:
        return str(Path(path).resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def plan_runs(
    entries: Sequence[SiteEnvironment],
    playbook: str,
    cwd: Path,
    *,
    options: Sequence[str] = (),
    timeout: float | None = None,
    grace: float = 60.0,
) -> list[SiteRun]:
    """One SiteRun per site environment, its hosts found in its inventory by site name.

    Raise InvalidInput with every problem (an inventory that does not load, a site it does not
    hold) before any site starts: a fleet never runs half of a portfolio because of a typo.
    """
    runs: list[SiteRun] = []
    problems: list[Problem] = []
    playbook_arg = relative(playbook, cwd) if (cwd / playbook).is_file() else playbook
    sites: dict[tuple[str, str], dict[str, list[Host]] | None] = {}
    for entry in entries:
        key = (entry.env, entry.inventory)
        if key not in sites:
            try:
                sites[key] = sites_of(load_entry_inventory(entry, cwd))
            except InvalidInput as error:
                sites[key] = None
                problems += [p for p in error.problems if p not in problems]
        found = sites[key]
        if found is None:
            continue
        hosts = [h.name for h in found.get(entry.site_name, [])]
        if not hosts:
            where = entry.position
            message = f"{entry.key}: no host of {relative(entry.inventory, cwd)} is site '{entry.site_name}'"
            problems.append(Problem(where.file, where.line, where.column, "", message))
            continue
        runs.append(
            SiteRun(
                key=entry.key,
                client=entry.client,
                site=entry.site,
                env=entry.env,
                playbook=playbook_arg,
                inventory=relative(entry.inventory, cwd),
                hosts=hosts,
                options=list(options),
                timeout=timeout,
                grace=grace,
            )
        )
    if problems:
        raise InvalidInput(problems)
    return runs


def check_runs(
    runs: Sequence[SiteRun],
    cwd: Path,
    var: Sequence[str] = (),
    vars_file: Sequence[str] = (),
    extra_vars: Sequence[str] = (),
) -> None:
    """Validate what every site's run will validate (playbook, inventory, variables, storage, lock), at once.

    Why before any site starts: a typo in the playbook would otherwise make every site's run exit
    2 one after another; here it is reported once, with its file:line, and nothing runs. One check
    per inventory, with every selected site's hosts, is the same check each site's run repeats.
    Raise InvalidInput with every problem found.
    """
    from maintkit.config.validate import load_run
    from maintkit.engine.lockplan import check_lock_settings
    from maintkit.storage.sites import check_sites

    groups: dict[tuple[str, str, str], list[str]] = {}
    for run in runs:
        groups.setdefault((run.playbook, run.env, run.inventory), []).extend(run.hosts)
    problems: list[Problem] = []
    for (playbook, env, inventory), hosts in groups.items():
        try:
            config = load_run(
                playbook, env, inventory, hosts, list(var), list(vars_file), cwd, check=True,
                extra_args=list(extra_vars),
            )  # fmt: skip
            found = check_sites(
                config.variables.values(), config.inventory.path, config.redactor, config.origins
            )
            found += check_lock_settings(config.variables.items(), config.inventory.path, config.redactor)
        except InvalidInput as error:
            found = error.problems
        problems += [p for p in found if p not in problems]
    if problems:
        raise InvalidInput(problems)
