"""The fleet's pure pieces: the exit code of many sites, a site's command line, planning its runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from maintkit.config.portfolio import load_portfolio
from maintkit.fleet.plan import SiteRun, plan_runs
from maintkit.fleet.process import SiteResult, worst_exit_code
from maintkit.model.problems import InvalidInput


def _result(code: int | None) -> SiteResult:
    return SiteResult("c/s/e", "c", "s", "e", ["h"], exit_code=code)


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 4], 4),
        ([4, 2, 0], 2),
        ([2, 1, 4], 1),
        ([1, 3, 0], 3),
        ([0, None], 1),  # a site the stopped fleet never started counts as failed
        ([0, 137], 3),  # a code maintkit run never gives: a human must look
    ],
)
def test_the_fleet_exits_with_the_worst_site(codes: list[int | None], expected: int) -> None:
    assert worst_exit_code([_result(c) for c in codes]) == expected


def test_a_site_run_is_maintkit_run_limited_to_its_hosts() -> None:
    run = SiteRun("a/s/prod", "a", "s", "prod", "nightly-backup", "inventories/prod.yml", ["w1", "w2"],
                  options=["--var", "x=1"], timeout=60)  # fmt: skip
    assert run.command() == [
        sys.executable, "-m", "maintkit", "run", "nightly-backup", "--env", "prod",
        "-i", "inventories/prod.yml", "--limit", "w1,w2", "--output", "json", "--var", "x=1",
    ]  # fmt: skip
    assert SiteRun.from_dict(run.to_dict()) == run  # it travels to Celery workers as JSON-able data


def test_plan_finds_each_site_s_hosts_with_paths_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "production.yml").write_text(
        "all:\n  vars: {connection: local}\n  hosts:\n"
        "    a1: {site: shop-a}\n    a2: {site: shop-a}\n    b: {}\n"
    )
    (tmp_path / "book.yml").write_text("name: t\nsteps: [{shell: 'true'}]\n")
    (tmp_path / "portfolio.yml").write_text(
        "clients:\n  acme:\n    sites:\n      shop-a: {environments: [production]}\n"
        "      b: {environments: [production]}\n      shop-z: {environments: [production]}\n"
    )
    portfolio = load_portfolio(tmp_path / "portfolio.yml", tmp_path)
    runs = plan_runs(portfolio.select("production", site="shop-a"), "book.yml", tmp_path, timeout=5)
    assert [(r.key, r.hosts, r.inventory, r.playbook) for r in runs] == [
        ("acme/shop-a/production", ["a1", "a2"], "inventories/production.yml", "book.yml")
    ]
    with pytest.raises(InvalidInput) as raised:
        plan_runs(portfolio.select("production"), "book.yml", tmp_path)
    assert [str(p) for p in raised.value.problems] == [
        "portfolio.yml:6:16: acme/shop-z/production: no host of inventories/production.yml is site 'shop-z'"
    ]
