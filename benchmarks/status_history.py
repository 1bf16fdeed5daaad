"""``maintkit status`` over a year of nightly history: 500 sites x 365 runs on SQLite, under a second.

Why this size: an agency's control node records one nightly backup per site and environment; after
a year, 500 sites leave 182,500 runs (with their host outcomes, snapshots, verifications and lock
rows, plus monthly drills), and ``status`` must still answer at a glance, from cron and monitoring.

The history is built from synthetic journal events through the same mapping the live recording uses
(:func:`maintkit.history.mapping.map_run`), then bulk-inserted into a database migrated by Alembic as
maintkit opens it. A tenth of the sites get a stale last snapshot, so the answer holds breaches.

Figures, each a separate process timed from the outside (interpreter start included), median of the
rounds:

* ``maintkit status --output json`` over the portfolio of all sites (exit 1: the stale ones breach);
  every line it prints is checked against what was generated;
* baseline: a bare ``sqlite3`` process running one grouped query (the newest snapshot per site), the
  least any answer costs. The ratio says what the rest of status (imports, the other facts, the
  portfolio, rendering) costs on top of it.

Usage::

    .venv/bin/python benchmarks/status_history.py [--quick] [--sites 500] [--days 365] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from common import REPO, VENV_BIN, log, machine_facts, markdown_table, median, print_report, ratio, run_timed
from common import verdict as target_verdict

sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import insert

from maintkit.history.mapping import map_run
from maintkit.history.models import FACT_MODELS, Run
from maintkit.history.store import HistoryStore

TARGET_SECONDS = 1.0
STALE_EVERY = 10  # every tenth site's last snapshot is 3 days old: an RPO breach
BASELINE_QUERY = "select site, env, max(taken) from snapshots group by site, env"


def events_of(site: str, day: int, now: datetime) -> list[dict]:
    """One nightly run of one site, as the journal would hold it."""
    at = now - timedelta(days=day, hours=2)
    run_id = f"{at:%Y%m%dT%H%M%SZ}-{site}"
    ts = at.isoformat()
    snap = f"{at:%Y%m%dT%H%M%SZ}"
    out = [
        {
            "event": "run_start",
            "run_id": run_id,
            "ts": ts,
            "playbook": "nightly-backup",
            "env": "production",
            "hosts": [site],
            "sites": {site: site},
            "command": "run",
            "control_host": "ctl",
            "pid": 4242,
        },
        {"event": "lock_acquired", "run_id": run_id, "ts": ts, "host": site, "lock_dir": f"~/lock/{site}"},
        {
            "event": "step_end",
            "run_id": run_id,
            "ts": ts,
            "host": site,
            "action": "snapshot",
            "status": "changed",
            "data": {
                "snapshot_id": snap,
                "bytes": 10_000_000 + day,
                "targets": {"local": f"{site}/production/{snap}/"},
                "artifacts": {"db.sql.zst": {"size": 10_000_000 + day, "sha256": "0" * 64}},
            },
        },
        {
            "event": "step_end",
            "run_id": run_id,
            "ts": ts,
            "host": site,
            "action": "verify",
            "status": "ok",
            "data": {"snapshot_id": snap, "targets": {"local": True}},
        },
        {"event": "host_end", "run_id": run_id, "ts": ts, "host": site, "status": "ok", "duration": 42.0},
    ]
    if day % 30 == 0:
        out.append(
            {
                "event": "drill_report",
                "run_id": run_id,
                "ts": ts,
                "passed": True,
                "source_env": "production",
                "rto_objective_seconds": 3600,
                "rto_seconds": 300.0,
                "hosts": [
                    {
                        "host": site,
                        "site": site,
                        "snapshot_id": snap,
                        "rto_seconds": 300.0,
                        "data_loss_window_seconds": 7200.0,
                    }
                ],
            }
        )
    out.append(
        {"event": "run_end", "run_id": run_id, "ts": ts, "status": "done", "exit_code": 0, "duration": 42.0}
    )
    return out


def build(work: Path, sites: int, days: int) -> Path:
    """Write the history (SQLite beside work/journal), the portfolio and its inventory; return the db."""
    now = datetime.now(UTC)
    store = HistoryStore.open(f"sqlite:///{work / 'history.sqlite'}")
    tables = {m.__tablename__: m.__table__ for m in FACT_MODELS}
    names = [f"site{i:04d}" for i in range(sites)]
    for site_number, site in enumerate(names):
        first = 3 if site_number % STALE_EVERY == 0 else 0
        runs, facts = [], {name: [] for name in tables}
        for day in range(first, first + days):
            record = map_run(events_of(site, day, now))
            assert record is not None
            runs.append(record.run)
            for table, rows in record.facts.items():
                facts[table] += [{"run_id": record.run["id"], **row} for row in rows]
        with store.engine.begin() as connection:
            connection.execute(insert(Run.__table__), runs)
            for table, rows in facts.items():
                if rows:
                    connection.execute(insert(tables[table]), rows)
    store.close()
    (work / "inventories").mkdir()
    (work / "inventories" / "production.yml").write_text("all:\n  hosts: {}\n")
    portfolio = {
        "defaults": {"rpo_hours": 26, "rto_minutes": 60, "drill_every_days": 31},
        "clients": {"agency": {"sites": {name: {"environments": {"production": None}} for name in names}}},
    }
    (work / "portfolio.yml").write_text(yaml.safe_dump(portfolio))
    return work / "history.sqlite"


def check_answer(stdout: bytes, sites: int) -> None:
    """Every site is listed once; exactly the stale ones breach, and for their RPO."""
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    assert len(lines) == sites, f"{len(lines)} lines for {sites} sites"
    breaching = {x["site"] for x in lines if x["verdict"] == "breach"}
    expected = {f"site{i:04d}" for i in range(0, sites, STALE_EVERY)}
    assert breaching == expected, f"breaches {sorted(breaching)[:5]}..., expected {sorted(expected)[:5]}..."
    assert all([p["kind"] for p in x["problems"]] == ["rpo"] for x in lines if x["verdict"] == "breach")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="20 sites x 30 days, 2 rounds (CI: the script runs)"
    )
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    sites, days, rounds = (20, 30, 2) if args.quick else (args.sites, args.days, max(3, args.rounds))
    work = Path(tempfile.mkdtemp(prefix="mk-bench-status-"))
    try:
        log(f"building the history: {sites} sites x {days} nightly runs")
        started = time.perf_counter()
        database = build(work, sites, days)
        built = time.perf_counter() - started
        size_mib = database.stat().st_size / 1024 / 1024
        log(f"built in {built:.1f} s ({size_mib:.0f} MiB)")
        status_argv = [VENV_BIN / "maintkit", "status", "--output", "json", "--journal-dir", work / "runs"]
        baseline_argv = [
            sys.executable,
            "-c",
            f"import sqlite3; print(len(sqlite3.connect({str(database)!r}).execute("
            f"{BASELINE_QUERY!r}).fetchall()))",
        ]
        status_s, baseline_s, status_cpu, baseline_cpu = [], [], [], []
        for number in range(rounds + 1):  # round 0 warms the page cache and bytecode: not counted
            answer = run_timed(status_argv, cwd=work)
            if answer.rc != 1:
                raise RuntimeError(f"status exited {answer.rc}: {answer.stderr[-2000:].decode()}")
            check_answer(answer.stdout, sites)
            bare = run_timed(baseline_argv, cwd=work).check("bare query")
            if number:
                status_s.append(answer.seconds)
                baseline_s.append(bare.seconds)
                status_cpu.append(answer.cpu_seconds)
                baseline_cpu.append(bare.cpu_seconds)
        mid, base = median(status_s), median(baseline_s)
        runs = sites * days
        rows = [
            ("maintkit status --output json", f"{mid:.3f}", ratio(mid, base), f"{min(status_s):.3f}",
             f"{median(status_cpu):.3f}"),
            ("bare sqlite3 grouped query (baseline)", f"{base:.3f}", "1.00x", f"{min(baseline_s):.3f}",
             f"{median(baseline_cpu):.3f}"),
        ]  # fmt: skip
        sections = [
            (
                f"{sites} sites x {days} nightly runs = {runs} runs ({size_mib:.0f} MiB SQLite, built in "
                f"{built:.0f} s); wall time of the whole process, median of {rounds} rounds",
                markdown_table(("process", "median s", "vs bare query", "best s", "CPU s"), rows),
            ),
            (
                "Target",
                markdown_table(
                    ("what", "measured", "target", "verdict"),
                    [
                        (
                            "status answer",
                            f"{mid:.3f} s",
                            f"< {TARGET_SECONDS:g} s",
                            target_verdict(mid < TARGET_SECONDS),
                        )
                    ],
                ),
            ),
        ]
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # a shared machine stretches wall time
        facts = [*machine_facts(), ("load average (1, 5, 15 min) at the end", load)]
        text = print_report("status over a year of history (SQLite)", sections, facts)
        if args.output:
            args.output.write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
