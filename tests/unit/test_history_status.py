"""``status``'s verdicts: the newest facts of a site against its objectives (SQLite in a temp folder)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maintkit.history.facts import gather
from maintkit.history.mapping import map_run
from maintkit.history.status import problems_of
from maintkit.history.store import HistoryStore
from maintkit.model.portfolio import Objectives

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def ts(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def run(
    run_id: str, hours_ago: float, *events: dict, end: bool = True, env: str = "production"
) -> list[dict]:
    out = [
        {
            "event": "run_start",
            "run_id": run_id,
            "ts": ts(hours_ago),
            "env": env,
            "hosts": ["web1"],
            "sites": {"web1": "shop"},
            "playbook": "p",
            "command": "run",
        }
    ]
    out += [{"run_id": run_id, "ts": ts(hours_ago), "host": "web1", **e} for e in events]
    if end:
        out.append(
            {"event": "run_end", "run_id": run_id, "ts": ts(hours_ago), "status": "done", "exit_code": 0}
        )
    return out


def snapshot(snapshot_id: str) -> dict:
    return {
        "event": "step_end",
        "action": "snapshot",
        "status": "changed",
        "data": {"snapshot_id": snapshot_id, "bytes": 10, "targets": {"local": "x"}},
    }


def verify(snapshot_id: str, ok: bool) -> dict:
    return {
        "event": "step_end",
        "action": "verify",
        "status": "ok" if ok else "failed",
        "data": {"snapshot_id": snapshot_id, "targets": {"local": ok}},
        "msg": "sha256 differs",
    }


@pytest.fixture
def store(tmp_path):
    opened = HistoryStore.open(f"sqlite:///{tmp_path}/h.sqlite")
    yield opened
    opened.close()


def facts_of(store, *runs):
    from sqlalchemy.orm import Session

    for events in runs:
        store.record(map_run(events))
    with Session(store.engine) as session:
        return gather(session, [("shop", "production")], NOW)[("shop", "production")]


def kinds(problems):
    return [p["kind"] for p in problems]


def test_a_fresh_verified_snapshot_and_a_recent_drill_meet_the_objectives(store):
    facts = facts_of(
        store,
        run("r1", 30, snapshot("S1")),
        run("r2", 2, snapshot("S2"), verify("S2", True)),
        run(
            "d1",
            24 * 3,
            {
                "event": "drill_report",
                "passed": True,
                "source_env": "production",
                "hosts": [{"host": "web1", "site": "shop", "rto_seconds": 300}],
            },
            env="drill",
        ),
    )
    assert facts.snapshot.snapshot_id == "S2" and facts.snapshot_verified is True
    assert facts.drill.rto_seconds == 300
    assert problems_of(facts, Objectives(rpo_hours=24, rto_minutes=10, drill_every_days=30), NOW) == []


def test_a_snapshot_older_than_the_rpo_is_a_breach_and_none_at_all_too(store):
    facts = facts_of(store, run("r1", 30, snapshot("S1")))
    [problem] = problems_of(facts, Objectives(rpo_hours=24), NOW)
    assert problem["kind"] == "rpo" and "30 h old" in problem["message"]
    assert kinds(problems_of(facts_of(store), Objectives(rpo_hours=24), NOW)) == ["rpo"]


def test_no_drill_within_the_interval_and_a_drill_over_the_rto_are_breaches(store):
    facts = facts_of(
        store,
        run(
            "d1",
            24 * 40,
            {
                "event": "drill_report",
                "passed": True,
                "source_env": "production",
                "hosts": [{"host": "web1", "site": "shop", "rto_seconds": 1200}],
            },
            env="drill",
        ),
    )
    assert kinds(problems_of(facts, Objectives(rto_minutes=10, drill_every_days=30), NOW)) == ["drill", "rto"]


def test_the_newest_failed_verification_and_an_unfinished_rollback_are_breaches(store):
    rollback = {"event": "rollback_start", "failed_step": "migrate"}
    facts = facts_of(
        store,
        run("r1", 3, snapshot("S1"), verify("S1", False)),
        run("r2", 1, rollback, {"event": "host_end", "status": "rollback_failed"}),
    )
    assert facts.snapshot_verified is False
    found = problems_of(facts, Objectives(), NOW)
    assert kinds(found) == ["verification", "rollback"]
    assert "sha256 differs" in found[0]["message"] and "r2" in found[1]["message"]


def test_an_unfinished_run_is_the_lock_holder_and_a_finished_one_is_not(store):
    facts = facts_of(store, run("r1", 5, snapshot("S1")), run("r2", 0.1, end=False))
    assert [r.id for r in facts.running] == ["r2"]


def test_recording_a_run_twice_leaves_one_copy_of_its_rows(store):
    events = run("r1", 1, snapshot("S1"), verify("S1", True))
    facts_of(store, events, events)
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from maintkit.history.models import Run, Snapshot, Verification

    with Session(store.engine) as session:
        counts = [session.scalar(select(func.count()).select_from(m)) for m in (Run, Snapshot, Verification)]
    assert counts == [1, 1, 1]


def test_a_site_whose_newest_snapshot_is_older_than_the_look_back_is_still_found(store):
    # the recent-first query finds the fresh site; the stale one comes from the whole history
    fresh = run("r1", 1, snapshot("FRESH"))
    stale = [{**e, "host": "web2"} if "host" in e else e for e in run("r2", 24 * 20, snapshot("OLD"))]
    stale[0] = {**stale[0], "hosts": ["web2"], "sites": {"web2": "blog"}}
    store.record(map_run(fresh))
    store.record(map_run(stale))
    from sqlalchemy.orm import Session

    with Session(store.engine) as session:
        found = gather(session, [("shop", "production"), ("blog", "production")], NOW)
    assert found[("shop", "production")].snapshot.snapshot_id == "FRESH"
    assert found[("blog", "production")].snapshot.snapshot_id == "OLD"
    assert kinds(problems_of(found[("blog", "production")], Objectives(rpo_hours=24), NOW)) == ["rpo"]
