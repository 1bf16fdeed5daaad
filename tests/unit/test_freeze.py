"""Freeze windows: parsing (problems named), which action kinds a freeze refuses, portfolio windows."""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from pathlib import Path

import pytest

from maintkit.actions.base import get_action
from maintkit.config.freeze import parse_freeze
from maintkit.config.portfolio import load_portfolio
from maintkit.history.facts import SiteFacts
from maintkit.history.freezecheck import freeze_drill_finding
from maintkit.history.status import evaluate
from maintkit.model.freeze import FreezeWindow, active_window, next_window
from maintkit.model.portfolio import Objectives
from maintkit.model.problems import InvalidInput


def test_windows_parse_from_yaml_dates_and_strings() -> None:
    windows, problem = parse_freeze([{"from": date(2026, 11, 20), "to": "2027-01-05", "reason": "BF"}])
    assert problem is None
    assert windows == [FreezeWindow(date(2026, 11, 20), date(2027, 1, 5), "BF")]
    assert active_window(windows, date(2026, 11, 20)) == windows[0]
    assert active_window(windows, date(2027, 1, 5)) == windows[0]
    assert active_window(windows, date(2027, 1, 6)) is None
    assert next_window(windows, date(2026, 11, 1)) == windows[0]
    assert next_window(windows, date(2026, 11, 21)) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-20", "must be a list"),
        ([{"from": "2026-11-31", "to": "2027-01-05"}], "'from' must be a date"),
        ([{"from": "2026-11-20"}], "'to' must be a date"),
        ([{"from": "2027-01-05", "to": "2026-11-20"}], "is before 'from'"),
        ([{"from": "2026-11-20", "to": "2027-01-05", "until": 1}], "unknown key 'until'"),
    ],
)
def test_bad_windows_are_named(value: object, message: str) -> None:
    assert message in (parse_freeze(value)[1] or "")


@pytest.mark.parametrize(
    ("action", "params", "refused"),
    [
        ("composer", {"command": "update"}, True),
        ("composer", {"command": "install", "dry_run": True}, False),
        ("composer", {"command": "install", "dry_run": "{{ dry }}"}, True),
        ("release", {"op": "prepare"}, True),
        ("release", {"op": "switch"}, True),
        ("release", {"op": "rollback"}, False),
        ("release", {"op": "cleanup"}, False),
        ("release", {"op": "{{ op }}"}, True),
        ("wp", {"command": "plugin-update"}, True),
        ("wp", {"command": "core-update-db"}, True),
        ("wp", {"command": "versions"}, False),
        ("prestashop", {"command": "update:start"}, True),
        ("prestashop", {"command": "backup:restore"}, False),
        ("promotable", {"op": "apply"}, True),
        ("promotable", {"op": "record"}, False),
        ("magento", {"command": "setup:upgrade"}, True),
        ("magento", {"command": "module:enable"}, True),
        ("magento", {"command": "cache:flush"}, False),
        ("magento", {"command": "upgrade-status"}, False),
        ("snapshot", {}, False),
        ("verify", {}, False),
        ("restore", {}, False),
        ("shell", {"cmd": "x"}, False),
        ("maintenance", {"state": "on"}, False),
    ],
)
def test_the_rule_is_by_action_kind(action: str, params: dict[str, object], refused: bool) -> None:
    found = get_action(action)
    assert found is not None
    assert found.changes_production(params) is refused


def test_portfolio_freeze_inherits_and_is_checked_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories/production.yml").write_text(
        "all:\n  hosts:\n    shop: {ansible_host: 127.0.0.1}\n"
    )
    (tmp_path / "portfolio.yml").write_text(
        textwrap.dedent(
            """\
            defaults:
              freeze: [{from: 2026-11-20, to: 2027-01-05, reason: Black Friday}]
              drill_before_freeze_days: 14
            clients:
              acme:
                sites:
                  shop:
                    environments: [production]
            """
        )
    )
    entry = load_portfolio(tmp_path / "portfolio.yml", tmp_path).entries()[0]
    assert entry.objectives.freeze == (FreezeWindow(date(2026, 11, 20), date(2027, 1, 5), "Black Friday"),)
    assert entry.objectives.drill_before_freeze_days == 14
    text = (tmp_path / "portfolio.yml").read_text().replace("to: 2027-01-05", "to: soon")
    (tmp_path / "portfolio.yml").write_text(text)
    with pytest.raises(InvalidInput) as error:
        load_portfolio(tmp_path / "portfolio.yml", tmp_path)
    assert "portfolio.yml:2" in str(error.value) and "'to' must be a date" in str(error.value)


def _objectives(days: int | None = 14) -> Objectives:
    window = FreezeWindow(date(2026, 11, 20), date(2027, 1, 5), "Black Friday")
    return Objectives(freeze=(window,), drill_before_freeze_days=days)


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def test_drill_before_freeze_quiet_far_ahead_then_warns_then_breaches() -> None:
    objectives = _objectives()
    assert freeze_drill_finding(objectives, None, _at("2026-10-01")) is None  # far ahead
    ahead = freeze_drill_finding(objectives, None, _at("2026-10-31"))  # due from 11-06, notice a week before
    assert ahead is not None and not ahead.breach and "from 2026-11-06" in ahead.message
    due = freeze_drill_finding(objectives, None, _at("2026-11-10"))
    assert due is not None and not due.breach and "due now" in due.message and "(10 d left)" in due.message
    late = freeze_drill_finding(objectives, _at("2026-10-01"), _at("2026-11-21"))  # drill too early
    assert late is not None and late.breach and "started with no passed restore drill" in late.message


def test_a_drill_in_the_days_before_the_freeze_satisfies_it() -> None:
    objectives = _objectives()
    assert freeze_drill_finding(objectives, _at("2026-11-08"), _at("2026-11-10")) is None
    assert freeze_drill_finding(objectives, _at("2026-11-08"), _at("2026-12-01")) is None
    assert freeze_drill_finding(_objectives(None), None, _at("2026-11-21")) is None  # no rule set


def test_status_lines_carry_the_warning_and_the_breach() -> None:
    objectives = _objectives()
    warned = evaluate([("acme", "shop", "production", objectives, SiteFacts())], _at("2026-11-10"))[0]
    assert warned.ok and warned.warnings[0]["kind"] == "freeze-drill"
    breached = evaluate([("acme", "shop", "production", objectives, SiteFacts())], _at("2026-11-25"))[0]
    assert not breached.ok and [p["kind"] for p in breached.problems] == ["freeze-drill"]
