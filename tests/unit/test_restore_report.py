"""The drill report built from a journal, its verdict and causes, the HTML page; the shipped playbooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.actions.restore import RestoreParams
from maintkit.config.validate import load_run
from maintkit.model.problems import InvalidInput
from maintkit.reporting.drill_report import build_report, phase_chart, render_html, write_report

T0 = "2026-11-22T03:00:00.000+00:00"


def phase(name: str, at: str, seconds: float, artifact: str | None = "db.sql.zst") -> dict[str, Any]:
    return {
        "name": name,
        "started": f"2026-11-22T03:00:{at}+00:00",
        "seconds": seconds,
        "artifact": artifact,
        "bytes": None,
        "note": "",
    }


RECORD: dict[str, Any] = {
    "snapshot_id": "20261122T010000Z",
    "site": "shop",
    "snapshot_created": "2026-11-22T01:00:00+00:00",
    "storage_target": "offsite",
    "committed": True,
    "bytes": 10_000_000,
    "plain_bytes": 60_000_000,
    "phases": [
        phase("download", "01.000", 4.0),
        phase("decrypt", "01.000", 0.0),
        phase("decompress", "01.000", 4.0),
        phase("import", "01.000", 6.0),
        phase("verify", "07.000", 0.5),
        phase("download", "07.500", 1.0, "files.tar.zst"),
        phase("extract", "07.500", 1.2, "files.tar.zst"),
        phase("commit", "08.700", 0.3, None),
    ],
    "tables": [
        {
            "name": "sales_order",
            "manifest_rows": 10,
            "dump_rows": 10,
            "restored_rows": 10,
            "ok": True,
            "problem": "",
        },
        {
            "name": "<script>",
            "manifest_rows": 1,
            "dump_rows": 1,
            "restored_rows": 1,
            "ok": True,
            "problem": "",
        },
    ],
}


def journal(
    restore_status: str = "changed",
    record: dict[str, Any] | None = None,
    smoke_ok: bool = True,
    cleanup: str = "changed",
) -> list[dict[str, Any]]:
    checks = [
        {
            "name": "home",
            "url": "https://drill.example/",
            "ok": smoke_ok,
            "status": 200,
            "latency_ms": 12.5,
            "msg": "200 in 12 ms" if smoke_ok else "status 500, expected [200]",
        }
    ]
    return [
        {
            "ts": T0,
            "run_id": "r1",
            "event": "run_start",
            "playbook": "restore-drill",
            "env": "drill",
            "hosts": ["drill1"],
        },
        {
            "ts": "2026-11-22T03:00:09.000+00:00",
            "event": "step_end",
            "host": "drill1",
            "action": "restore",
            "section": "steps",
            "status": restore_status,
            "duration": 8.5,
            "msg": "restore message",
            "data": record if record is not None else RECORD,
            "step": "restore",
        },
        {
            "ts": "2026-11-22T03:00:10.000+00:00",
            "event": "step_end",
            "host": "drill1",
            "action": "smoke",
            "section": "steps",
            "status": "ok" if smoke_ok else "failed",
            "duration": 0.5,
            "msg": "",
            "data": {"checks": checks},
            "step": "smoke checks",
        },
        {
            "ts": "2026-11-22T03:00:11.000+00:00",
            "event": "step_end",
            "host": "drill1",
            "action": "drill_cleanup",
            "section": "always",
            "status": cleanup,
            "duration": 1.0,
            "msg": "database dropped",
            "step": "clean",
        },
        {"ts": "2026-11-22T03:00:11.100+00:00", "event": "run_end", "exit_code": 0},
    ]


def test_a_passing_drill() -> None:
    report = build_report(journal(), source_env="production", rto=60, keep=False)
    assert report["verdict"] == {
        "passed": True,
        "summary": "drill1: snapshot 20261122T010000Z restored and checked in 10.00 s (objective 60 s); "
        "2 tables / 11 rows proven; 1 smoke check(s) passed; data-loss window 2 h 0 min",
        "causes": [],
    }
    [host] = report["hosts"]
    assert host["rto_seconds"] == 10.0 and host["data_loss_window_seconds"] == 7200.0
    assert host["phase_totals"]["download"] == 5.0 and host["phase_totals"]["smoke"] == 0.5
    assert [(p["name"], p["offset"], p["seconds"]) for p in host["phases"]][:2] == [
        ("prepare", 0.0, 1.0),  # connecting, locking, checking: from the run's start to the first byte
        ("download", 1.0, 4.0),
    ]
    assert host["phases"][-1]["name"] == "smoke"
    assert host["cleanup"] == {"status": "done", "msg": "database dropped"}
    json.dumps(report)  # JSON-ready


@pytest.mark.parametrize(
    ("events", "rto", "causes", "message"),
    [
        (
            journal(),
            5,
            ["rto"],
            "drill1: the restore took longer than the RTO: restored and checked in 10.00 s",
        ),
        (journal(smoke_ok=False), None, ["smoke"], "a smoke check failed: home: status 500"),
        (journal(cleanup="failed"), None, ["cleanup"], "the drill environment was not cleaned"),
        (
            journal("failed", {**RECORD, "cause": "integrity", "artifact": "db.sql.zst", "committed": False}),
            None,
            ["integrity"],
            "snapshot integrity check failed: restore message",
        ),
        (journal("failed", {**RECORD, "cause": "tables"}), None, ["tables"], "tables missing or incomplete"),
        (journal()[:1] + journal()[-1:], None, ["restore_not_run"], "the restore did not run"),
    ],
)
def test_each_cause_has_its_own_message(
    events: list[dict[str, Any]], rto: float | None, causes: list[str], message: str
) -> None:
    report = build_report(events, source_env="production", rto=rto, keep=False)
    assert not report["verdict"]["passed"]
    assert [c["cause"] for c in report["verdict"]["causes"]] == causes
    assert message in report["verdict"]["causes"][0]["message"]


def test_no_smoke_check_is_a_failure_and_keep_is_reported() -> None:
    events = [e for e in journal() if e.get("action") not in ("smoke", "drill_cleanup")]
    report = build_report(events, source_env="production", rto=None, keep=True)
    assert [c["cause"] for c in report["verdict"]["causes"]] == ["smoke_missing"]
    assert report["hosts"][0]["cleanup"]["status"] == "kept"


def test_the_html_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    report = build_report(journal(), source_env="production", rto=60, keep=False)
    json_path, html_path = write_report(report, tmp_path, "r1")
    page = html_path.read_text()
    assert json.loads(json_path.read_text())["verdict"]["passed"]
    assert page.startswith("<!DOCTYPE html>") and "PASSED" in page and "<svg" in page
    assert "&lt;script&gt;" in page and "<script" not in page and "href=" not in page and "src=" not in page
    for name in ("download", "decompress", "import", "verify", "extract", "commit", "smoke"):
        assert f">{name}" in page
    failed = render_html(build_report(journal(smoke_ok=False), source_env="production", rto=None, keep=False))
    assert "FAILED" in failed and "status 500" in failed


def test_the_chart_places_bars_on_one_time_line() -> None:
    svg = phase_chart(
        [
            {"name": "download", "artifact": "db.sql.zst", "offset": 0.0, "seconds": 2.0},
            {"name": "import", "artifact": "db.sql.zst", "offset": 0.0, "seconds": 4.0},
            {"name": "smoke", "artifact": None, "offset": 4.0, "seconds": 1.0},
        ]
    )
    assert svg.count("<rect") == 3 and ">0 s<" in svg and ">5 s<" in svg
    assert phase_chart([]) == "<p class='muted'>no phase ran</p>"


# -- the shipped playbooks and the action's parameters ---------------------------------------------------


def inventory(tmp_path: Path, **host: Any) -> Path:
    path = tmp_path / "drill.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"drill1": {"connection": "local", **host}}}}))
    return path


DRILL_HOST = {
    "site": "shop",
    "database": {"name": "drill_shop", "user": "drill", "password": "long enough"},
    "files": {"root": "/srv/drill/shop", "cms": "magento"},
    "smoke": [{"url": "https://drill.example/", "contains": "Add to Cart"}],
    "rewrite_urls": {"app": "magento", "url": "https://drill.example/"},
}


@pytest.mark.parametrize("playbook", ["restore", "restore-drill"])
def test_the_shipped_playbooks_validate(playbook: str, tmp_path: Path) -> None:
    config = load_run(playbook, None, str(inventory(tmp_path, **DRILL_HOST)), None, [], [], tmp_path)
    assert [h.name for h in config.hosts] == ["drill1"]


def test_bad_drill_settings_are_found_before_the_run(tmp_path: Path) -> None:
    host = {**DRILL_HOST, "rewrite_urls": {"app": "joomla", "url": "drill.example"}, "smoke": [{"url": "x"}]}
    with pytest.raises(InvalidInput) as error:
        load_run("restore-drill", None, str(inventory(tmp_path, **host)), None, [], [], tmp_path)
    text = str(error.value)
    assert "rewrite_urls.app" in text and "rewrite_urls.url" in text and "checks[0].url" in text


def test_restore_parameters() -> None:
    with pytest.raises(ValueError, match="give 'database', 'files' or both"):
        RestoreParams.model_validate({})
    with pytest.raises(ValueError, match="must be a relative path under root"):
        RestoreParams.model_validate({"files": {"root": "/x"}, "keep": ["../etc"]})
    params = RestoreParams.model_validate({"files": {"root": "/x", "cms": "wordpress"}})
    assert params.kept_paths() == ["wp-config.php"]
    assert RestoreParams.model_validate({"files": {"root": "/x"}}).kept_paths() == []


def test_http_steps_of_a_custom_drill_playbook_count_as_smoke_checks() -> None:
    events = journal()
    http_step = {
        "ts": "2026-11-22T03:00:10.500+00:00",
        "event": "step_end",
        "host": "drill1",
        "action": "http",
        "section": "steps",
        "status": "failed",
        "duration": 0.2,
        "msg": "body does not contain 'Add to Cart'",
        "data": {"status": 200, "latency_ms": 80.0, "url": "https://drill.example/p.html"},
        "step": "product page",
    }
    report = build_report(
        [*events[:3], http_step, *events[3:]], source_env="production", rto=None, keep=False
    )
    [host] = report["hosts"]
    assert [c["name"] for c in host["smoke"]] == ["home", "product page"]
    assert host["rto_seconds"] == 10.5  # the last smoke check ends the time to restore
    assert report["verdict"]["causes"][0]["message"].endswith(
        "product page: body does not contain 'Add to Cart'"
    )
