"""Reading ``portfolio.yml``: the agency's clients -> sites -> environments, with their objectives.

Why a file of its own above the inventories: an inventory says which machines one environment runs
on; the portfolio says which sites the agency maintains, which environment of each lives in which
inventory, and what each site was promised (RPO, RTO, drills, maintenance window). The inventories
stay as they are (nothing to rewrite): an environment names its inventory, and a site in a
multi-site inventory is the hosts whose ``site`` variable (else host name) is the site's name.

The format (every key but ``clients`` optional)::

    defaults:                       # objectives of every site, unless a site or environment says otherwise
      rpo_hours: 24
      rto_minutes: 120
      drill_every_days: 30
      window: "02:00-05:00"         # local time, may cross midnight ("23:00-02:00")
      timezone: Europe/Paris        # IANA name; UTC when absent
      freeze:                       # no update or promotion on these days (both included, UTC dates)
        - {from: 2026-11-20, to: 2027-01-05, reason: Black Friday}
      drill_before_freeze_days: 14  # a successful restore drill at most this long before a freeze starts
      availability_percent: 99.5    # the SLA the monthly report measures the smoke checks against
    clients:
      acme:
        title: ACME GmbH
        sites:
          acme-shop:
            rpo_hours: 12           # overrides the defaults for this site
            environments:
              production:           # inventory: inventories/production.yml beside this file
                rpo_hours: 6        # overrides the site's value for this environment
              staging:
                inventory: inventories/acme-staging.yml   # a path (relative to this file), or a name
                site: shop          # the site's name in that inventory (default: acme-shop)

Every problem is reported at once with ``file:line`` (the YAML loader keeps positions), before
anything connects, as the inventory and playbook loaders do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maintkit.config.freeze import parse_freeze
from maintkit.config.inventory import find_inventory, load_inventory
from maintkit.config.variables import host_vars
from maintkit.model.hosts import Host, Inventory
from maintkit.model.portfolio import Client, MaintenanceWindow, Objectives, Portfolio, Site, SiteEnvironment
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.storage.sites import site_name
from maintkit.text.yamlload import (
    PosDict,
    did_you_mean,
    display_path,
    load_yaml,
    locate,
    problem_at,
    type_name,
)

DEFAULT_FILE = "portfolio.yml"
OBJECTIVE_KEYS = (
    "rpo_hours",
    "rto_minutes",
    "drill_every_days",
    "window",
    "timezone",
    "freeze",
    "drill_before_freeze_days",
    "availability_percent",
)
TOP_KEYS = ("defaults", "clients")
CLIENT_KEYS = ("title", "sites")
SITE_KEYS = ("environments", *OBJECTIVE_KEYS)
ENV_KEYS = ("inventory", "site", *OBJECTIVE_KEYS)
WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
INVENTORY_SUFFIXES = (".yml", ".yaml", ".ini", ".json")


@dataclass
class _Reader:
    """What a walk through one portfolio file needs: the file's name, its data, the problems so far."""

    file: str
    data: Any
    base: Path
    cwd: Path
    problems: list[Problem]

    def problem(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(problem_at(self.file, self.data, path, message))

    def mapping(
        self, value: Any, path: tuple[Any, ...], what: str, keys: tuple[str, ...] | None = None
    ) -> dict[Any, Any]:
        """``value`` as a mapping (None: empty) with only ``keys`` if given; a problem for anything else."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping, not {type_name(value)}")
            return {}
        for key in value:
            if keys is not None and key not in keys:
                hint = did_you_mean(key, keys) or f"; {what} holds only {', '.join(keys)}"
                self.problem((*path, key), f"unknown key '{key}' in {what}{hint}")
        return value


def default_portfolio_path(cwd: Path) -> Path:
    """Where the portfolio is when ``-P`` is not given: ``portfolio.yml`` beside ``inventories/``."""
    return cwd / DEFAULT_FILE


def load_portfolio(path: str | Path, cwd: Path | None = None) -> Portfolio:
    """Given a ``portfolio.yml``, return the Portfolio. Raise InvalidInput with every problem found.

    Checks the structure, names, objectives (numbers > 0, a ``HH:MM-HH:MM`` window, a known time
    zone) and that every environment's inventory file exists; :func:`check_inventories` then loads
    those inventories (``maintkit validate`` does both).
    """
    cwd = cwd or Path.cwd()
    file = display_path(path, cwd)
    data = load_yaml(path, file)
    reader = _Reader(file, data, Path(path).resolve().parent, cwd, [])
    top = reader.mapping(data, (), "a portfolio", TOP_KEYS)
    if data is not None and not isinstance(data, dict):
        raise InvalidInput(reader.problems)
    defaults = _objective_values(
        reader, reader.mapping(top.get("defaults"), ("defaults",), "defaults", OBJECTIVE_KEYS), ("defaults",)
    )
    portfolio = Portfolio(path=file)
    clients = top.get("clients")
    if not clients:
        reader.problem(("clients",) if "clients" in top else (), "the portfolio lists no client ('clients:')")
    for name, value in reader.mapping(clients, ("clients",), "clients").items():
        client = _client(reader, name, value, ("clients", name), defaults)
        if client is not None:
            portfolio.clients[client.name] = client
    _check_duplicates(reader, portfolio)
    if reader.problems:
        raise InvalidInput(reader.problems)
    return portfolio


def _client(
    reader: _Reader, name: Any, value: Any, path: tuple[Any, ...], defaults: dict[str, Any]
) -> Client | None:
    if not _valid_name(reader, name, path, "client"):
        return None
    body = reader.mapping(value, path, f"client '{name}'", CLIENT_KEYS)
    title = body.get("title", name)
    if not isinstance(title, str | int) or isinstance(title, bool):
        reader.problem((*path, "title"), f"title must be a string, not {type_name(title)}")
    client = Client(name=name, title=str(title))
    sites = body.get("sites")
    if not sites:
        reader.problem(
            (*path, "sites") if "sites" in body else path, f"client '{name}' lists no site ('sites:')"
        )
    for site_key, site_value in reader.mapping(sites, (*path, "sites"), "sites").items():
        site = _site(reader, name, site_key, site_value, (*path, "sites", site_key), defaults)
        if site is not None:
            client.sites[site.name] = site
    return client


def _site(
    reader: _Reader, client: str, name: Any, value: Any, path: tuple[Any, ...], defaults: dict[str, Any]
) -> Site | None:
    if not _valid_name(reader, name, path, "site"):
        return None
    body = reader.mapping(value, path, f"site '{name}'", SITE_KEYS)
    inherited = {**defaults, **_objective_values(reader, body, path)}
    site = Site(client=client, name=name)
    envs = body.get("environments")
    if isinstance(envs, list) and all(isinstance(item, str) for item in envs):
        envs = _listed(envs)  # ``environments: [production, staging]``: each with its inventory by name
    if not envs:
        where = (*path, "environments") if "environments" in body else path
        reader.problem(where, f"site '{name}' lists no environment ('environments:')")
    for env, env_value in reader.mapping(envs, (*path, "environments"), "environments").items():
        entry = _environment(reader, client, name, env, env_value, (*path, "environments", env), inherited)
        if entry is not None:
            site.environments[env] = entry
    return site


def _listed(names: list[str]) -> dict[str, None]:
    """A list of environment names as the mapping form, each name keeping its position in the file."""
    mapping = PosDict({name: None for name in names})
    mapping.positions = {name: pos for name, pos in zip(names, getattr(names, "positions", []), strict=False)}
    mapping.start = getattr(names, "start", None)
    return mapping


def _environment(
    reader: _Reader,
    client: str,
    site: str,
    env: Any,
    value: Any,
    path: tuple[Any, ...],
    inherited: dict[str, Any],
) -> SiteEnvironment | None:
    if not _valid_name(reader, env, path, "environment"):
        return None
    if isinstance(value, str):  # ``production: inventories/prod.yml``: the inventory alone
        value = {"inventory": value}
        body: dict[Any, Any] = value
    else:
        body = reader.mapping(value, path, f"environment '{env}' of site '{site}'", ENV_KEYS)
    objectives = _objectives(reader, {**inherited, **_objective_values(reader, body, path)}, path)
    name_in_inventory = body.get("site", site)
    if (
        not isinstance(name_in_inventory, str | int)
        or isinstance(name_in_inventory, bool)
        or not str(name_in_inventory)
    ):
        reader.problem(
            (*path, "site"),
            f"site must be the site's name in the inventory, not {type_name(name_in_inventory)}",
        )
        return None
    inventory = _inventory_file(reader, env, body.get("inventory"), path)
    if inventory is None or objectives is None:
        return None
    line, column = locate(reader.data, path)
    return SiteEnvironment(
        client=client,
        site=site,
        env=env,
        inventory=inventory,
        site_name=str(name_in_inventory),
        objectives=objectives,
        position=Position(reader.file, line, column),
    )


def _inventory_file(reader: _Reader, env: str, value: Any, path: tuple[Any, ...]) -> str | None:
    """The inventory an environment names: a path (a ``/`` or a suffix) or a name (``inventories/NAME.yml``).

    Relative to the portfolio's folder, so the portfolio works from any working directory.
    """
    where = (*path, "inventory") if value is not None else path
    if value is None:
        value = env
    if not isinstance(value, str) or not value.strip():
        reader.problem(where, f"inventory must be a name or a path, not {type_name(value)}")
        return None
    as_path = "/" in value or value.endswith(INVENTORY_SUFFIXES)
    try:
        found = find_inventory(None if as_path else value, value if as_path else None, reader.base)
    except InvalidInput as error:
        message = "; ".join(p.message for p in error.problems)
        reader.problem(where, message)
        return None
    return str(found.folder if found.folder is not None else found.file)


def _objective_values(reader: _Reader, body: dict[Any, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    """The objective keys one mapping sets, each checked; a wrong one is a problem and is left out."""
    values: dict[str, Any] = {}
    for key in OBJECTIVE_KEYS:
        if key not in body:
            continue
        value, where = body[key], (*path, key)
        if key == "window":
            if not isinstance(value, str) or _window_times(value) is None:
                reader.problem(where, f'window must be "HH:MM-HH:MM" (24-hour local time), not {value!r}')
                continue
        elif key == "timezone":
            if not isinstance(value, str) or not _known_zone(value):
                reader.problem(
                    where, f"timezone must be an IANA time zone name like Europe/Paris, not {value!r}"
                )
                continue
        elif key == "freeze":
            windows, problem = parse_freeze(value)
            if problem is not None:
                reader.problem(where, problem)
                continue
            value = tuple(windows)
        elif key in ("drill_every_days", "drill_before_freeze_days"):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                reader.problem(where, f"{key} must be a whole number of days > 0, not {value!r}")
                continue
        elif key == "availability_percent" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100
        ):
            reader.problem(where, f"availability_percent must be a percentage > 0 and <= 100, not {value!r}")
            continue
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            reader.problem(where, f"{key} must be a number > 0, not {value!r}")
            continue
        values[key] = value
    return values


def _objectives(reader: _Reader, values: dict[str, Any], path: tuple[Any, ...]) -> Objectives | None:
    window = None
    if "window" in values:
        times = _window_times(values["window"])
        if times is None:  # pragma: no cover - checked in _objective_values
            return None
        window = MaintenanceWindow(times[0], times[1], values.get("timezone", "UTC"))
    return Objectives(
        rpo_hours=values.get("rpo_hours"),
        rto_minutes=values.get("rto_minutes"),
        drill_every_days=values.get("drill_every_days"),
        window=window,
        freeze=values.get("freeze", ()),
        drill_before_freeze_days=values.get("drill_before_freeze_days"),
        availability_percent=values.get("availability_percent"),
    )


def _window_times(text: str) -> tuple[time, time] | None:
    match = WINDOW.match(text)
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        return None
    return time(h1, m1), time(h2, m2)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _valid_name(reader: _Reader, name: Any, path: tuple[Any, ...], what: str) -> bool:
    if isinstance(name, str) and NAME.match(name):
        return True
    reader.problem(
        path, f"{what} name {name!r} must be letters, digits, '.', '_' or '-' (not starting with '.' or '-')"
    )
    return False


def _check_duplicates(reader: _Reader, portfolio: Portfolio) -> None:
    """Two entries naming the same site of the same inventory would run it twice in one fleet run."""
    seen: dict[tuple[str, str, str], SiteEnvironment] = {}
    for entry in portfolio.entries():
        key = (entry.env, entry.inventory, entry.site_name)
        first = seen.setdefault(key, entry)
        if first is not entry:
            reader.problems.append(
                Problem(
                    entry.position.file,
                    entry.position.line,
                    entry.position.column,
                    "",
                    f"{entry.key} is the same site as {first.key} (line {first.position.line}): "
                    f"site '{entry.site_name}' of {display_path(entry.inventory, reader.cwd)}",
                )
            )


# -- the inventories it names ---------------------------------------------------------------------


def load_entry_inventory(entry: SiteEnvironment, cwd: Path) -> Inventory:
    """The inventory of one site environment, named by its environment (the lock's and snapshots' name)."""
    return load_inventory(entry.env, entry.inventory, cwd)


def site_hosts(inventory: Inventory, name: str) -> list[Host]:
    """The hosts of ``inventory`` that are site ``name`` (their ``site`` variable, else their host name)."""
    return sites_of(inventory).get(name, [])


def sites_of(inventory: Inventory) -> dict[str, list[Host]]:
    """Every site of ``inventory`` -> its hosts, in inventory order (one pass: fleets have hundreds)."""
    sites: dict[str, list[Host]] = {}
    for host in inventory.hosts.values():
        sites.setdefault(site_name(host_vars(inventory, host)), []).append(host)
    return sites


def check_inventories(portfolio: Portfolio, cwd: Path) -> list[Problem]:
    """Load every inventory the portfolio names and find each site in it; return every problem.

    An inventory's own problems are reported as the inventory loader reports them (its file:line);
    a site it does not hold is reported at the portfolio's line, naming the sites it does hold.
    """
    problems: list[Problem] = []
    loaded: dict[tuple[str, str], Inventory | None] = {}
    sites: dict[tuple[str, str], list[str]] = {}
    for entry in portfolio.entries():
        key = (entry.env, entry.inventory)
        if key not in loaded:
            try:
                loaded[key] = load_entry_inventory(entry, cwd)
            except InvalidInput as error:
                loaded[key] = None
                problems += [p for p in error.problems if p not in problems]
        inventory = loaded[key]
        if inventory is None:
            continue
        names = sites.setdefault(key, sorted(sites_of(inventory)))
        if entry.site_name in names:
            continue
        hint = did_you_mean(entry.site_name, names) or f" (its sites: {', '.join(names)})"
        problems.append(
            replace(
                Problem(entry.position.file, entry.position.line, entry.position.column, "", ""),
                message=f"{entry.key}: no host of {display_path(entry.inventory, cwd)} is site "
                f"'{entry.site_name}'{hint}",
            )
        )
    return problems
