"""The plain ``sqlite3`` recording path writes exactly what SQLAlchemy's does, and reads trends alike.

Why it matters: a run records with :mod:`maintkit.history.sqlitewriter` (no SQLAlchemy import) and
``history import`` with :class:`~maintkit.history.store.HistoryStore`; a run recorded live and
imported later must be the same rows, byte for byte, and ``status`` reads them through the ORM.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from maintkit.history import plaintrends, sqlitewriter, trendquery
from maintkit.history.mapping import map_run
from maintkit.history.models import FACT_MODELS
from maintkit.history.schema import FACT_TABLES
from maintkit.history.store import HistoryStore

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def events(run_id: str, hours_ago: float, size: int = 1000, latency: float = 80.0) -> list[dict]:
    """One run of every kind of fact the mapping knows, its timestamps in Paris time (UTC+1)."""
    at = (NOW - timedelta(hours=hours_ago)).astimezone(PARIS).isoformat()
    base = {"run_id": run_id, "ts": at, "host": "web1"}
    steps = [
        {"action": "snapshot", "status": "changed", "data": {"snapshot_id": f"S-{run_id}", "bytes": size,
         "artifacts": {"db.sql.zst": {"size": size, "sha256": "ab"}}, "targets": {"local": "x/é"},
         "disk": [{"what": "files", "path": "/srv", "mount": "/", "total": 10**12, "free": 10**11}]}},
        {"action": "verify", "status": "failed", "msg": "sha256 differs", "data": {"snapshot_id": "S"}},
        {"action": "composer", "status": "changed", "data": {"moved": [{"package": "a/b", "old": "1",
         "new": "2"}]}},
        {"action": "audit", "status": "failed", "data": {"advisories": [{"package": "a/b", "severity": "high",
         "title": "CVE"}], "failures": ["c/d"]}},
        {"action": "smoke", "status": "ok", "data": {"checks": [{"url": "https://x/", "status": 200,
         "latency_ms": latency, "ok": True}]}},
        {"action": "release", "status": "changed", "data": {"id": "R2", "previous": "R1"}},
    ]  # fmt: skip
    return [
        {"event": "run_start", **base, "env": "production", "hosts": ["web1"], "sites": {"web1": "shop"},
         "playbook": "p", "command": "fleet", "control_host": "ctl", "pid": 42},
        {"event": "lock_acquired", **base, "lock_dir": "/l"},
        *({"event": "step_end", **base, "step": s["action"], **s} for s in steps),
        {"event": "rollback_start", **base, "failed_step": "migrate"},
        {"event": "host_end", **base, "status": "rolled_back", "duration": 1.5},
        {"event": "drill_report", **base, "passed": True, "source_env": "production", "summary": "ok",
         "hosts": [{"host": "web1", "site": "shop", "rto_seconds": 300, "data_loss_window_seconds": 60}]},
        {"event": "run_end", **base, "status": "failed", "exit_code": 1, "error": "it failed"},
    ]  # fmt: skip


def dump(path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(path)
    try:
        tables = ["runs", *FACT_TABLES]
        return {t: connection.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    finally:
        connection.close()


def test_the_fact_tables_are_the_models():
    assert tuple(model.__tablename__ for model in FACT_MODELS) == FACT_TABLES  # type: ignore[attr-defined]


def test_the_plain_writer_stores_what_sqlalchemy_stores_and_replaces_a_run(tmp_path):
    record = map_run(events("r1", 2), "/j/r1.jsonl")
    assert record is not None and all(record.rows(t) for t in FACT_TABLES)  # every table has a row
    orm, plain = tmp_path / "orm.sqlite", tmp_path / "plain.sqlite"
    for path in (orm, plain):
        HistoryStore.open(f"sqlite:///{path}").close()  # created and migrated the SQLAlchemy way
    store = HistoryStore.open(f"sqlite:///{orm}")
    store.record(record)
    store.close()
    assert sqlitewriter.record(plain, record) is True
    assert sqlitewriter.record(plain, record) is True  # a second write of the run replaces it
    assert dump(plain) == dump(orm)
    assert dump(plain)["runs"][0][5] == "2026-12-05 10:00:00.000000"  # 11:00 in Paris, stored in UTC
    # and the ORM reads the plain rows back as it reads its own
    reread = HistoryStore.open(f"sqlite:///{plain}")
    [run] = reread.runs()
    assert (run.command, run.status, run.exit_code, run.sites) == ("fleet", "failed", 1, ["shop"])
    reread.close()


def test_the_plain_writer_leaves_new_or_older_databases_to_sqlalchemy(tmp_path):
    record = map_run(events("r1", 2))
    assert record is not None
    assert sqlitewriter.record(tmp_path / "none.sqlite", record) is False  # no file: Alembic creates it
    old = tmp_path / "old.sqlite"
    HistoryStore.open(f"sqlite:///{old}").close()
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    assert sqlitewriter.record(old, record) is False
    assert str(sqlitewriter.sqlite_file("sqlite:////a/b.sqlite")) == "/a/b.sqlite"
    assert sqlitewriter.sqlite_file("postgresql+psycopg://u@h/db") is None


def test_the_plain_trend_reader_finds_what_trendquery_finds(tmp_path):
    assert plaintrends.LOOKBACK == trendquery.LOOKBACK
    path = tmp_path / "h.sqlite"
    store = HistoryStore.open(f"sqlite:///{path}")
    for day in range(30):  # a month, the shop slow in its last week; then a backup of 40 % the size
        slow = 900.0 if day >= 24 else 80.0
        store.record(map_run(events(f"n{day}", 24 * (30 - day) - 12, size=10_000_000, latency=slow)))
    store.record(map_run(events("small", 1, size=4_000_000, latency=900.0)))
    with Session(store.engine) as session:
        expected = trendquery.trend_warnings(session, "shop", "production", NOW)
    store.close()
    found = plaintrends.trend_warnings(path, ["shop"], "production", NOW)
    assert found is not None and {t.kind for t in expected} == {"latency", "backup-size"}  # both fired
    mine = [(t.kind, t.message) for t in found[("shop", "production")]]
    assert mine == [(t.kind, t.message) for t in expected]


def test_the_plain_reader_sees_updates_and_releases_as_the_session_does(tmp_path):
    """The integrity watch asks "was the site updated or released since the last hash list?" with
    ``sqlite3`` after a run (no SQLAlchemy import); the answer must be the ORM's at every moment."""
    from maintkit.history.integrity import updated_since_in_session

    path = tmp_path / "h.sqlite"
    store = HistoryStore.open(f"sqlite:///{path}")
    store.record(map_run(events("upd", 5)))  # its composer update and its release 5 hours ago
    with Session(store.engine) as session:
        by_session = updated_since_in_session(session)
        for site, hours in [("shop", 6), ("shop", 5), ("shop", 4.99), ("shop", 1), ("other", 6)]:
            since = NOW - timedelta(hours=hours)
            expected = by_session(site, "production", since)
            assert plaintrends.updated_since(path, site, "production", since) is expected, (site, hours)
        assert by_session("shop", "production", NOW - timedelta(hours=6)) is True
        assert by_session("shop", "production", NOW - timedelta(hours=4)) is False
        assert plaintrends.updated_since(path, "shop", "staging", NOW - timedelta(hours=6)) is False
    store.close()
