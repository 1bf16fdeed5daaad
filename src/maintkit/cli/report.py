"""``maintkit report --client C --period YYYY-MM [--site S] --out DIR``: a client's activity report.

Only selecting and writing: the client's site environments come from the portfolio, the data from
the history (:mod:`maintkit.history.report`), the rendering from :mod:`maintkit.reporting.activity`.
Writes CLIENT-PERIOD.html (self-contained), .json (the same data) and .pdf (headless Chromium;
``--no-pdf`` skips it). Exit 2 on bad input, 1 when the PDF cannot be printed (HTML and JSON are
written first, so they are there either way).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from maintkit.cli.execute import _startup
from maintkit.cli.history import open_history
from maintkit.cli.portfolio import load_portfolio_or_exit, portfolio_option


@click.command()
@portfolio_option
@click.option("--client", required=True, help="The client (a key of the portfolio's clients).")
@click.option("--period", required=True, metavar="YYYY-MM", help="The month reported on (UTC).")
@click.option("--site", help="Only this site of the client.")
@click.option("--env", default="production", show_default=True, help="The environment reported on.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--no-pdf", is_flag=True, help="Write the HTML and JSON only.")
@click.option(
    "--journal-dir", type=click.Path(), help="Where run journals are [.maintkit/runs]; SQLite is beside it."
)
def report(
    portfolio: str | None,
    client: str,
    period: str,
    site: str | None,
    env: str,
    out: Path,
    no_pdf: bool,
    journal_dir: str | None,
) -> None:
    """A client's monthly activity report: backups, drills, updates, incidents, availability."""
    with _startup():
        from sqlalchemy.orm import Session

        from maintkit.cli.execute import fail_invalid
        from maintkit.engine.journal import journal_dir as resolve_journal_dir
        from maintkit.history.report import Period, SiteRef, site_report
        from maintkit.model.problems import InvalidInput, Problem
        from maintkit.reporting.activity import build, write
        from maintkit.reporting.pdf import PdfError, print_pdf

    try:
        month = Period.month(period)
    except ValueError:
        fail_invalid(
            InvalidInput(
                [Problem("command line", None, None, "--period", f"not a month YYYY-MM: {period!r}")]
            )
        )
    book = load_portfolio_or_exit(portfolio)
    try:
        entries = book.select(env, client, site)
    except InvalidInput as error:
        fail_invalid(error)
    now = datetime.now(UTC)
    refs = [
        SiteRef(
            e.site_name,
            e.env,
            e.site,
            e.objectives.rto_minutes,
            e.objectives.rpo_hours,
            e.objectives.window,
            e.objectives.availability_percent,
        )
        for e in entries
    ]
    store = open_history(journal_dir)
    try:
        with Session(store.engine) as session:
            base = resolve_journal_dir(journal_dir).parent  # the integrity watch's lists
            sites = [site_report(session, ref, month, now, base) for ref in refs]
    finally:
        store.close()
    record = build(client, book.clients[client].title, month, sites, now)
    json_path, html_path = write(record, month, out)
    click.echo(f"wrote {json_path}")
    click.echo(f"wrote {html_path}")
    if no_pdf:
        return
    try:
        pdf = print_pdf(html_path, html_path.with_suffix(".pdf"))
    except PdfError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(f"wrote {pdf}")
