"""The agency's portfolio as plain data: clients -> sites -> environments, each with its objectives.

Why in the leaf: the fleet runner (cli), the history and ``status`` (which compare what happened
with each site's RPO/RTO) all read the same portfolio; plain dataclasses let every layer take it as
a value without importing the loader (``maintkit.config.portfolio``) that builds it from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from maintkit.model.freeze import FreezeWindow
from maintkit.model.problems import InvalidInput, Position, Problem


@dataclass(frozen=True)
class MaintenanceWindow:
    """When a site may be worked on: ``start``-``end`` local time in ``timezone`` (IANA name).

    ``end`` before ``start`` means the window crosses midnight (``"23:00-02:00"``).
    """

    start: time
    end: time
    timezone: str

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


@dataclass(frozen=True)
class Objectives:
    """A site's service objectives; None where the portfolio does not set one.

    ``rpo_hours``: the oldest a last good snapshot may be; ``rto_minutes``: the longest a restore
    may take (drills compare with it); ``drill_every_days``: how often a restore drill must prove
    the backups; ``window``: the maintenance window updates must fit in.
    """

    rpo_hours: float | None = None
    rto_minutes: float | None = None
    drill_every_days: int | None = None
    window: MaintenanceWindow | None = None
    #: peak-season freeze windows: no update or promotion on those days (docs/reports.md)
    freeze: tuple[FreezeWindow, ...] = ()
    #: a successful restore drill is due within this many days before a freeze starts
    drill_before_freeze_days: int | None = None
    #: the availability (share of passed smoke checks, %) the monthly report measures against
    availability_percent: float | None = None


@dataclass(frozen=True)
class SiteEnvironment:
    """One environment of one site: where its inventory is, which of its hosts are the site.

    ``site_name`` is the site's name inside the inventory (its hosts' ``site`` variable, else their
    host name); ``inventory`` is the inventory file's path as the loader resolved it.
    """

    client: str
    site: str
    env: str
    inventory: str
    site_name: str
    objectives: Objectives
    position: Position

    @property
    def key(self) -> str:
        """``client/site/env``: how the fleet names one run in its summary and JSON lines."""
        return f"{self.client}/{self.site}/{self.env}"


@dataclass
class Site:
    """One site of a client: its environments by name."""

    client: str
    name: str
    environments: dict[str, SiteEnvironment] = field(default_factory=dict)


@dataclass
class Client:
    """One client of the agency; ``title`` is a display name (defaults to the key)."""

    name: str
    title: str
    sites: dict[str, Site] = field(default_factory=dict)


@dataclass
class Portfolio:
    """Every client, site and environment the agency maintains (``portfolio.yml``)."""

    path: str
    clients: dict[str, Client] = field(default_factory=dict)

    def entries(self) -> list[SiteEnvironment]:
        """Every site environment, in the order the portfolio lists them."""
        return [
            entry
            for client in self.clients.values()
            for site in client.sites.values()
            for entry in site.environments.values()
        ]

    def select(
        self, env: str | None, client: str | None = None, site: str | None = None
    ) -> list[SiteEnvironment]:
        """The site environments of ``env`` (every environment when None), of one client or site if named.

        Raise InvalidInput when ``client`` or ``site`` names nothing in the portfolio: a typo on a
        cron line must not quietly run nothing.
        """
        problems: list[Problem] = []
        if client is not None and client not in self.clients:
            known = ", ".join(self.clients) or "none"
            problems.append(
                Problem("command line", None, None, "--client", f"no client {client!r} (known: {known})")
            )
        sites = {s.name for c in self.clients.values() if client in (None, c.name) for s in c.sites.values()}
        if site is not None and not problems and site not in sites:
            known = ", ".join(sorted(sites)) or "none"
            problems.append(
                Problem("command line", None, None, "--site", f"no site {site!r} (known: {known})")
            )
        if problems:
            raise InvalidInput(problems)
        return [
            entry
            for entry in self.entries()
            if (env is None or entry.env == env)
            and (client is None or entry.client == client)
            and (site is None or entry.site == site)
        ]
