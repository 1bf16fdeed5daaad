"""``maintkit status``: the fleet at a glance, one line per site environment, non-zero on any breach.

Only selecting and rendering: which sites (the portfolio, else every site the history knows), and
their lines; the facts are :mod:`maintkit.history.facts`', the verdicts :mod:`maintkit.history.status`'.
A table with colours and a verdict per line on a terminal, the same plain in a pipe (cron mail,
``grep``), one JSON object per line with ``--output json``. Exit 0 when every line is ok, 1 when
any breaches its objectives (monitoring alerts on it), 2 on invalid input.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maintkit.cli.execute import _startup
from maintkit.cli.history import open_history
from maintkit.cli.portfolio import load_portfolio_or_exit, portfolio_option

if TYPE_CHECKING:
    from maintkit.history.status import SiteStatus
    from maintkit.model.portfolio import Portfolio

EXIT_BREACH = 1


@click.command()
@portfolio_option
@click.option("--client", help="Only this client's sites (needs the portfolio).")
@click.option("--env", help="Only this environment.")
@click.option("--site", help="Only this site (its name in the portfolio, or in the history without one).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs]; SQLite is beside it."
)
def status(
    portfolio: str | None,
    client: str | None,
    env: str | None,
    site: str | None,
    output: str,
    journal_dir: str | None,
) -> None:
    """Every site environment against its objectives (RPO, RTO, drills): exit 1 on any breach.

    The sites and their objectives come from the portfolio (-P, default portfolio.yml); without one,
    every site environment the history holds is listed, with no objective to breach.
    """
    with _startup():  # no garbage collection while SQLAlchemy and the portfolio loader load
        from sqlalchemy.orm import Session

        from maintkit.engine.journal import journal_dir as resolve_journal_dir
        from maintkit.history.facts import gather
        from maintkit.history.integrity import SHOWN, describe, findings, latest
        from maintkit.history.status import evaluate
        from maintkit.history.trendquery import trend_warnings_of
        from maintkit.model.portfolio import Objectives
        from maintkit.model.problems import InvalidInput

        book = _portfolio(portfolio, client)
    store = open_history(journal_dir)
    now = datetime.now(UTC)
    try:
        with Session(store.engine) as session:
            if book is None:
                keys = [(s, e) for s, e in _known_sites(session, env) if site is None or s == site]
                if site is not None and not keys:
                    raise click.UsageError(
                        f"the history knows no site {site!r}" + (f" in {env!r}" if env else "")
                    )
                entries: list[tuple[Any, ...]] = [(None, s, e, Objectives(), (s, e)) for s, e in keys]
            else:
                try:
                    chosen = book.select(env, client, site)
                except InvalidInput as error:
                    from maintkit.cli.execute import fail_invalid

                    fail_invalid(error)
                entries = [(e.client, e.site_name, e.env, e.objectives, (e.site_name, e.env)) for e in chosen]
            facts = gather(session, [entry[4] for entry in entries], now)
            lines = evaluate([(c, s, e, o, facts[key]) for c, s, e, o, key in entries], now)
            trends = trend_warnings_of(session, {(x.site, x.env): x.objectives.window for x in lines}, now)
            base = resolve_journal_dir(journal_dir).parent  # the integrity lists are beside the journals
            for line in lines:  # "we saw it coming": warnings, never a breach
                line.warnings += [
                    {"kind": t.kind, "message": t.message} for t in trends[(line.site, line.env)]
                ]
                line.warnings += [
                    {"kind": "integrity", "message": describe(f)}
                    for f in latest(findings(base, line.site, line.env, now - SHOWN))
                ]
                line.warnings += [  # killed runs, or ends the history missed: not lock holders
                    {
                        "kind": "unfinished-run",
                        "message": f"{r.command or 'run'} {r.id} did not record its end: {why}",
                    }
                    for r, why in line.facts.ended
                ]
    finally:
        store.close()
    if output == "json":
        for line in lines:
            click.echo(json.dumps(line.as_json(now)))
    else:
        _print_table(lines, now, book is None)
    sys.exit(EXIT_BREACH if any(not line.ok for line in lines) else 0)


def _portfolio(path: str | None, client: str | None) -> Portfolio | None:
    """The portfolio when given or present here; None without one (``--client`` then needs one)."""
    from maintkit.config.portfolio import default_portfolio_path

    if path or default_portfolio_path(Path.cwd()).is_file():
        return load_portfolio_or_exit(path)
    if client:
        raise click.UsageError("--client needs the portfolio (-P FILE, or portfolio.yml here)")
    return None


def _known_sites(session: Any, env: str | None) -> list[tuple[str, str]]:
    """Every (site, env) the history has a host outcome of, sorted."""
    from sqlalchemy import select

    from maintkit.history.models import HostOutcome

    query = select(HostOutcome.site, HostOutcome.env).distinct()
    if env:
        query = query.where(HostOutcome.env == env)
    return sorted((str(site), str(e)) for site, e in session.execute(query))


def _print_table(lines: list[SiteStatus], now: datetime, no_portfolio: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from maintkit.history.facts import age
    from maintkit.history.status import duration
    from maintkit.reporting.terminal import make_console

    console = make_console()
    table = Table("site", "env", "snapshot", "drill", "update", "release", "lock", "verdict", show_edge=False)
    for line in lines:
        f = line.facts
        if f.snapshot is None:
            snap = "none"
        else:
            mark = {True: "verified", False: "verify FAILED", None: "not verified"}[f.snapshot_verified]
            snap = f"{duration(age(f.snapshot.taken, now) or 0)} ago, {mark}, {_size(f.snapshot.size)}"
        if f.drill is None:
            drill = "none"
        else:
            objective = line.objectives.rto_minutes
            rto = duration(f.drill.rto_seconds) if f.drill.rto_seconds is not None else "?"
            drill = f"{f.drill.finished:%Y-%m-%d}, RTO {rto}" + (
                f" / {objective:g} min" if objective is not None else ""
            )
        update = (
            "none"
            if f.update is None
            else f"{f.update.at:%Y-%m-%d} {f.update.package} → {f.update.new_version}"
        )
        release = f.release.release if f.release else "-"
        lock = ", ".join(
            f"{r.command or 'run'} {r.id} ({r.control_host} pid {r.control_pid})" for r in f.running
        )
        verdict = (
            "[green]ok[/]"
            if line.ok
            else "[red bold]BREACH[/]: " + escape("; ".join(p["message"] for p in line.problems))
        )
        if line.warnings:
            verdict += "; [yellow]warning[/]: " + escape("; ".join(w["message"] for w in line.warnings))
        site = f"{line.client}/{line.site}" if line.client else line.site
        table.add_row(
            escape(site),
            escape(line.env),
            snap,
            drill,
            escape(update),
            escape(release),
            escape(lock or "-"),
            verdict,
        )
    console.print(table)
    breaches = sum(1 for line in lines if not line.ok)
    summary = f"{len(lines)} site environment(s), {breaches} breaching their objectives"
    if no_portfolio:
        summary += " (no portfolio: no objectives to check)"
    console.print(f"[red]{summary}[/]" if breaches else f"[green]{summary}[/]")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
