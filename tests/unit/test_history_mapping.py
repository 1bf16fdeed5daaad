"""The mapping from a run's journal events to history rows (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from maintkit.history.mapping import MAPPED_EVENTS, map_run

RUN = "20261205T010000Z-abcdef"


def ev(event: str, second: int, **fields):
    return {"ts": f"2026-12-05T01:00:{second:02d}.000+00:00", "run_id": RUN, "event": event, **fields}


def start(**fields):
    base = {
        "playbook": "nightly-backup",
        "env": "production",
        "hosts": ["web1", "web2"],
        "sites": {"web1": "shop", "web2": "blog"},
        "command": "run",
        "control_host": "ctl",
        "pid": 42,
    }
    return ev("run_start", 0, **{**base, **fields})


def step(second: int, host: str, action: str, status: str = "changed", **data):
    return ev(
        "step_end",
        second,
        host=host,
        step=action,
        action=action,
        section="steps",
        status=status,
        data=data or None,
        msg=f"{action} said so",
    )


def test_a_run_maps_to_its_run_row_with_command_sites_and_control_host():
    record = map_run([start(), ev("run_end", 9, status="done", exit_code=0, duration=9.0)], "/j/r.jsonl")
    run = record.run
    assert run["id"] == RUN and run["command"] == "run" and run["playbook"] == "nightly-backup"
    assert run["env"] == "production" and run["sites"] == ["blog", "shop"]
    assert run["started"] == datetime(2026, 12, 5, 1, 0, 0, tzinfo=UTC)
    assert run["finished"] == datetime(2026, 12, 5, 1, 0, 9, tzinfo=UTC)
    assert (run["status"], run["exit_code"], run["control_host"], run["control_pid"]) == (
        "done",
        0,
        "ctl",
        42,
    )
    assert run["journal_path"] == "/j/r.jsonl"


def test_a_run_without_run_end_is_unfinished_and_a_journal_without_start_maps_to_nothing():
    record = map_run([start()])
    assert record.run["status"] == "unfinished" and record.run["finished"] is None
    assert map_run([ev("run_end", 1, status="done", exit_code=0)]) is None


def test_host_outcomes_snapshots_and_verifications_carry_the_site_of_their_host():
    record = map_run(
        [
            start(),
            step(
                3,
                "web1",
                "snapshot",
                snapshot_id="20261205T010003Z",
                bytes=1234,
                targets={"local": "shop/production/20261205T010003Z/"},
                artifacts={"db.sql.zst": {"size": 1000, "sha256": "ab"}},
                engine="restic",
            ),
            step(4, "web1", "verify", status="ok", snapshot_id="20261205T010003Z", targets={"local": True}),
            step(4, "web2", "verify", status="failed", snapshot_id="S9", targets={"local": False}),
            ev("host_end", 5, host="web1", status="ok", duration=5.0),
            ev("host_end", 5, host="web2", status="failed", duration=5.0, failed_step="verify"),
        ]
    )
    [snapshot] = record.rows("snapshots")
    assert snapshot["site"] == "shop" and snapshot["env"] == "production" and snapshot["host"] == "web1"
    assert snapshot["size"] == 1234 and snapshot["engine"] == "restic"
    assert snapshot["targets"] == {"local": "shop/production/20261205T010003Z/"}
    assert [(v["site"], v["ok"], v["snapshot_id"]) for v in record.rows("verifications")] == [
        ("shop", True, "20261205T010003Z"),
        ("blog", False, "S9"),
    ]
    assert [(h["site"], h["status"], h["failed_step"]) for h in record.rows("host_outcomes")] == [
        ("shop", "ok", None),
        ("blog", "failed", "verify"),
    ]


def test_a_failed_or_skipped_snapshot_step_records_no_snapshot():
    record = map_run(
        [
            start(),
            step(1, "web1", "snapshot", status="failed", snapshot_id="X", bytes=1),
            step(1, "web2", "snapshot", status="skipped"),
        ]
    )
    assert record.rows("snapshots") == []


def test_updates_audit_findings_and_smoke_checks():
    record = map_run(
        [
            start(),
            step(
                2,
                "web1",
                "composer",
                moved=[
                    {
                        "package": "magento/product-community-edition",
                        "old": "2.4.6",
                        "new": "2.4.7",
                        "kind": "update",
                    }
                ],
                count=1,
            ),
            step(
                3,
                "web1",
                "audit",
                status="ok",
                advisories=[
                    {
                        "package": "guzzlehttp/guzzle",
                        "title": "CVE",
                        "severity": "low",
                        "cve": None,
                        "link": None,
                        "affected": None,
                    }
                ],
                blocking=0,
                abandoned=[],
            ),
            step(4, "web2", "wp", updated=[{"name": "akismet", "old": "5.0", "new": "5.1"}]),
            step(
                5,
                "web1",
                "smoke",
                status="ok",
                checks=[
                    {"url": "https://shop.test/", "ok": True, "status": 200, "latency_ms": 12.5},
                    {"url": "https://shop.test/cart", "ok": False, "status": 500, "latency_ms": 80.0},
                ],
            ),
            step(6, "web2", "http", status="ok", url="https://blog.test/", latency_ms=3.0),
        ]
    )
    assert [
        (u["site"], u["package"], u["old_version"], u["new_version"]) for u in record.rows("updates")
    ] == [
        ("shop", "magento/product-community-edition", "2.4.6", "2.4.7"),
        ("blog", "akismet", "5.0", "5.1"),
    ]
    [finding] = record.rows("audit_findings")
    assert finding["package"] == "guzzlehttp/guzzle" and finding["blocking"] is False
    assert [(s["site"], s["url"], s["status"], s["ok"]) for s in record.rows("smoke_checks")] == [
        ("shop", "https://shop.test/", 200, True),
        ("shop", "https://shop.test/cart", 500, False),
        ("blog", "https://blog.test/", None, True),
    ]


def test_release_switches_and_rollbacks_set_the_current_release_and_prepare_does_not():
    record = map_run(
        [
            start(),
            step(
                1,
                "web1",
                "release",
                id="R2",
                path="/r/R2",
                previous="R1",
                previous_path="/r/R1",
                root="/r",
                current_path="/r/current",
            ),
            step(2, "web1", "release", id="R2", previous="R1", composer_lock_sha256="ff"),
            step(3, "web1", "release", current="R1", switched=True, failed="R2", previous="R2"),
        ]
    )
    assert [(r["release"], r["previous"]) for r in record.rows("releases")] == [("R2", "R1"), ("R1", "R2")]


def test_a_rollback_is_finished_only_when_its_host_ended_rolled_back():
    record = map_run(
        [
            start(),
            ev("rollback_start", 2, host="web1", failed_step="migrate"),
            ev("rollback_start", 2, host="web2", failed_step="migrate"),
            ev("host_end", 3, host="web1", status="rolled_back"),
            ev("host_end", 3, host="web2", status="rollback_failed"),
        ]
    )
    assert [(r["site"], r["finished"], r["detail"]) for r in record.rows("rollbacks")] == [
        ("shop", True, "rolled_back"),
        ("blog", False, "rollback_failed"),
    ]


def test_lock_events_and_a_refused_lock_are_lock_waits():
    taken = map_run(
        [start(), ev("lock_acquired", 2, host="web1", lock_dir="~/.maintkit/lock/production/shop")]
    )
    [wait] = taken.rows("lock_waits")
    assert wait["outcome"] == "acquired" and wait["waited_seconds"] == 2.0
    refused = map_run([start(), ev("run_end", 1, status="locked", exit_code=4, error="held by run X on ctl")])
    [wait] = refused.rows("lock_waits")
    assert wait["outcome"] == "refused" and "run X" in wait["holder"]


def test_a_drill_report_is_a_drill_of_the_source_environment_per_site():
    record = map_run(
        [
            start(env="drill", hosts=["d1"], sites={"d1": "shop"}, command="drill"),
            ev(
                "drill_report",
                30,
                passed=True,
                summary="restored",
                source_env="production",
                rto_objective_seconds=600.0,
                rto_seconds=25.5,
                hosts=[
                    {
                        "host": "d1",
                        "site": "shop",
                        "snapshot_id": "S1",
                        "rto_seconds": 25.5,
                        "data_loss_window_seconds": 3600.0,
                    }
                ],
            ),
        ]
    )
    [drill] = record.rows("drills")
    assert (drill["site"], drill["env"], drill["drill_env"]) == ("shop", "production", "drill")
    assert drill["passed"] and drill["rto_seconds"] == 25.5 and drill["rto_objective_seconds"] == 600.0
    assert drill["data_loss_window_seconds"] == 3600.0


def test_an_old_journal_without_sites_names_each_host_its_own_site():
    record = map_run([start(sites=None), step(1, "web2", "snapshot", snapshot_id="S", bytes=1)])
    assert record.rows("snapshots")[0]["site"] == "web2"


def test_the_sink_keeps_only_what_the_mapping_reads():
    assert "progress" not in MAPPED_EVENTS and "command" not in MAPPED_EVENTS
    assert {"run_start", "run_end", "step_end", "drill_report"} <= MAPPED_EVENTS
