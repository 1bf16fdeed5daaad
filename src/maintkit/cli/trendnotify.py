"""After a run: the trends of the sites it touched ("we saw it coming"), on stderr and notified.

Why after the run's journal and history are closed: the history sink writes the run's rows when it
closes, and a dropped backup must be seen in the run that took it, not the next night. Why never an
error: a trend is a warning; a history that cannot be read leaves the run's outcome as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maintkit.engine.runconfig import RunConfig

if TYPE_CHECKING:
    from maintkit.history.integrity import UpdatedSince


def report_trends(
    config: RunConfig, journals: Path, monitoring: Any, quiet: bool, journal: Path | None = None
) -> list[str]:
    """Print (unless ``quiet``) and notify the trend and integrity warnings of the run's sites
    (the integrity lists the run's ``integrity`` steps recorded in ``journal``); return the messages."""
    from maintkit.history.location import database_url
    from maintkit.storage.sites import site_name

    sites = sorted({site_name(config.variables[h.name]) for h in config.hosts})
    env = config.inventory.name
    url = database_url(journals)
    try:
        messages = _plain_trends(config, url, journals, journal, sites, env)
        if messages is None:  # PostgreSQL, or a schema to migrate
            messages = _trends_through_sqlalchemy(config, url, journals, journal, sites, env)
    except Exception as error:
        click.echo(f"warning: the trends could not be read from the history: {error}", err=True)
        return []
    if not messages:
        return messages
    if not quiet:
        for message in messages:
            click.echo(f"warning: trend: {message}", err=True)
    monitoring.emit = _say_failed_notifications
    monitoring.warn(f"WARNING: maintkit trends on {env}", "\n".join(messages))
    return messages


def _plain_trends(
    config: RunConfig, url: str, journals: Path, journal: Path | None, sites: list[str], env: str
) -> list[str] | None:
    """The integrity and trend messages read with ``sqlite3`` (no SQLAlchemy: a run's cheap path),
    or None when the history is not the embedded SQLite at the newest schema."""
    from maintkit.history import plaintrends
    from maintkit.history.sqlitewriter import sqlite_file

    path = sqlite_file(url)
    if path is None:
        return None
    now = datetime.now(UTC)
    found = plaintrends.trend_warnings(path, sites, env, now)
    if found is None:
        return None

    def updated_since(site: str, env: str, since: datetime) -> bool:
        return plaintrends.updated_since(path, site, env, since)

    messages = _integrity(config, journals, journal, updated_since, now)
    return messages + [f"{site} ({env}): {t.message}" for site in sites for t in found[(site, env)]]


def _trends_through_sqlalchemy(
    config: RunConfig, url: str, journals: Path, journal: Path | None, sites: list[str], env: str
) -> list[str]:
    """The integrity and trend messages read through SQLAlchemy (any database)."""
    from sqlalchemy.orm import Session

    from maintkit.history.database import HistoryUnavailable
    from maintkit.history.integrity import updated_since_in_session
    from maintkit.history.store import HistoryStore
    from maintkit.history.trendquery import trend_warnings

    messages: list[str] = []
    try:
        store = HistoryStore.open(url)
    except HistoryUnavailable:
        return messages  # the run already said so (its history sink)
    try:
        with Session(store.engine) as session:
            now = datetime.now(UTC)
            messages += _integrity(config, journals, journal, updated_since_in_session(session), now)
            for site in sites:
                messages += [f"{site} ({env}): {t.message}" for t in trend_warnings(session, site, env, now)]
    finally:
        store.close()
    return messages


def _say_failed_notifications(*_args: Any, **fields: Any) -> None:
    """The journal is closed by now: a notification that failed is said on stderr, one that went
    out is not (it printed ``warning: notification: None`` for every success before)."""
    if fields.get("error"):
        click.echo(f"warning: notification: {fields['error']}", err=True)


def _integrity(
    config: RunConfig, journals: Path, journal: Path | None, updated_since: UpdatedSince, now: datetime
) -> list[str]:
    """Compare each host's hash list of this run (its ``integrity`` steps, its snapshots made with
    ``integrity: true``) with the previous one."""
    import json

    from maintkit.config.freezeguard import changing_steps
    from maintkit.history.integrity import check, describe
    from maintkit.storage.sites import site_name

    if journal is None or not journal.is_file():
        return []
    updating = bool(changing_steps(config))
    out = []
    with open(journal, encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if event.get("event") != "step_end":
                continue
            host = str(event.get("host"))
            if event.get("action") == "audit" and host in config.variables:
                out += _audit(config, journals, event, now)
                continue
            if event.get("status") not in ("ok", "changed"):
                continue
            listed = hash_list(event)
            if host not in config.variables or listed is None:
                continue
            site, env = site_name(config.variables[host]), config.inventory.name
            if "error" in listed:
                out.append(f"{site} ({env}): integrity watch: {listed['error']}")
                continue
            finding = check(
                journals.parent,
                updated_since,
                site,
                env,
                listed["files"],
                str(event.get("run_id")),
                now,
                updating,
            )
            if finding is not None:
                out.append(f"{site} ({env}): {describe(finding)}")
    return out


def _audit(config: RunConfig, journals: Path, event: dict[str, Any], now: datetime) -> list[str]:
    """An ``audit`` step's checksum mismatches or advisories, when new since the site's last audit."""
    from maintkit.history.integrity import audit_items, check_audit, describe
    from maintkit.storage.sites import site_name

    if event.get("status") in ("skipped", "planned"):
        return []
    found = audit_items(event.get("data") or {})
    if found is None:
        return []
    site, env = site_name(config.variables[str(event.get("host"))]), config.inventory.name
    finding = check_audit(journals.parent, site, env, *found, str(event.get("run_id")), now)
    return [f"{site} ({env}): {describe(finding)}"] if finding is not None else []


def hash_list(event: dict[str, Any]) -> dict[str, Any] | None:
    """The code hash list a step recorded: an ``integrity`` step's, or the one a ``snapshot`` with
    ``integrity: true`` made while it streamed (``files``, or ``error`` when it could not be made)."""
    data = event.get("data") or {}
    if event.get("action") == "integrity" and isinstance(data.get("files"), dict):
        return {"files": data["files"]}
    listed = data.get("integrity") if event.get("action") == "snapshot" else None
    if isinstance(listed, dict) and (isinstance(listed.get("files"), dict) or listed.get("error")):
        return listed
    return None
