"""portfolio.yml: clients -> sites -> environments, objectives inherited, problems at file:line."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from maintkit.config.portfolio import check_inventories, load_entry_inventory, load_portfolio, site_hosts
from maintkit.model.problems import InvalidInput

PRODUCTION = """\
all:
  vars:
    ansible_user: deploy
  hosts:
    shop-a-web1: {ansible_host: 127.0.0.1, site: shop-a}
    shop-a-web2: {ansible_host: 127.0.0.2, site: shop-a}
    shop-b: {ansible_host: 127.0.0.3}
"""

PORTFOLIO = """\
defaults:
  rpo_hours: 24
  rto_minutes: 120
  drill_every_days: 30
  window: "02:00-05:00"
  timezone: Europe/Paris
clients:
  acme:
    title: ACME GmbH
    sites:
      shop-a:
        rpo_hours: 12
        environments:
          production:
            rpo_hours: 6
          staging:
            inventory: inventories/acme-staging.yml
            site: shop
  beta:
    sites:
      shop-b:
        window: "23:30-01:00"
        environments: [production]
"""

STAGING = """\
all:
  hosts:
    shop: {connection: local}
"""


def _write(tmp_path: Path, portfolio: str = PORTFOLIO) -> Path:
    (tmp_path / "inventories").mkdir(exist_ok=True)
    (tmp_path / "inventories" / "production.yml").write_text(PRODUCTION)
    (tmp_path / "inventories" / "acme-staging.yml").write_text(STAGING)
    path = tmp_path / "portfolio.yml"
    path.write_text(textwrap.dedent(portfolio))
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InvalidInput) as raised:
        load_portfolio(_write(tmp_path, text), tmp_path)
    return [str(p) for p in raised.value.problems]


def test_objectives_inherit_defaults_then_site_then_environment(tmp_path: Path) -> None:
    portfolio = load_portfolio(_write(tmp_path), tmp_path)
    production = {e.key: e for e in portfolio.select("production")}
    assert list(production) == ["acme/shop-a/production", "beta/shop-b/production"]
    shop_a = production["acme/shop-a/production"].objectives
    assert (shop_a.rpo_hours, shop_a.rto_minutes, shop_a.drill_every_days) == (6, 120, 30)
    assert shop_a.window is not None and shop_a.window.start == time(2, 0)
    assert str(shop_a.window) == "02:00-05:00 Europe/Paris"
    shop_b = production["beta/shop-b/production"].objectives
    assert shop_b.rpo_hours == 24 and str(shop_b.window) == "23:30-01:00 Europe/Paris"
    staging = portfolio.select("staging")[0]
    assert staging.objectives.rpo_hours == 12 and staging.site_name == "shop"
    assert staging.inventory == str(tmp_path / "inventories" / "acme-staging.yml")
    assert portfolio.clients["acme"].title == "ACME GmbH" and portfolio.clients["beta"].title == "beta"


def test_select_by_client_and_site_and_unknown_names(tmp_path: Path) -> None:
    portfolio = load_portfolio(_write(tmp_path), tmp_path)
    assert [e.key for e in portfolio.select("production", client="beta")] == ["beta/shop-b/production"]
    assert [e.key for e in portfolio.select(None, site="shop-a")] == [
        "acme/shop-a/production",
        "acme/shop-a/staging",
    ]
    assert portfolio.select("drill") == []
    with pytest.raises(InvalidInput, match="no client 'acmee'"):
        portfolio.select("production", client="acmee")
    with pytest.raises(InvalidInput, match="no site 'shop-c'"):
        portfolio.select("production", site="shop-c")


def test_multi_site_inventory_selects_hosts_by_site_name(tmp_path: Path) -> None:
    portfolio = load_portfolio(_write(tmp_path), tmp_path)
    assert check_inventories(portfolio, tmp_path) == []
    entry = portfolio.select("production", site="shop-a")[0]
    inventory = load_entry_inventory(entry, tmp_path)
    assert inventory.name == "production"
    assert [h.name for h in site_hosts(inventory, "shop-a")] == ["shop-a-web1", "shop-a-web2"]
    assert [h.name for h in site_hosts(inventory, "shop-b")] == ["shop-b"]


def test_every_problem_at_its_line(tmp_path: Path) -> None:
    text = """\
    defaults:
      rpo_hour: 24
    clients:
      acme:
        sites:
          shop-a:
            rto_minutes: -5
            environments:
              production:
                window: "2am"
                timezone: Mars/Olympus
              qa:
                inventory: nowhere
      beta:
        sites:
          shop-b:
            drill_every_days: 1.5
            environments:
              production:
                site: shop-b
          shop-c:
            environments: {}
    """
    problems = _problems(tmp_path, text)
    assert any(
        p.startswith("portfolio.yml:2:3: defaults.rpo_hour: unknown key") and "rpo_hours" in p
        for p in problems
    )
    assert any(p.startswith("portfolio.yml:7:") and "rto_minutes must be a number > 0" in p for p in problems)
    assert any(p.startswith("portfolio.yml:10:") and "window must be" in p for p in problems)
    assert any(p.startswith("portfolio.yml:11:") and "timezone must be" in p for p in problems)
    assert any(
        p.startswith("portfolio.yml:13:") and "no inventory for environment 'nowhere'" in p for p in problems
    )
    assert any(p.startswith("portfolio.yml:17:") and "drill_every_days" in p for p in problems)
    assert any(p.startswith("portfolio.yml:22:") and "lists no environment" in p for p in problems)


def test_same_site_twice_is_refused(tmp_path: Path) -> None:
    text = """\
    clients:
      acme:
        sites:
          shop-a:
            environments: [production]
      other:
        sites:
          copy:
            environments:
              production: {site: shop-a}
    """
    problems = _problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith("portfolio.yml:10:")
    assert "other/copy/production is the same site as acme/shop-a/production" in problems[0]


def test_site_missing_from_its_inventory_is_reported_at_the_portfolio_line(tmp_path: Path) -> None:
    text = """\
    clients:
      acme:
        sites:
          shop-aa:
            environments: [production]
    """
    portfolio = load_portfolio(_write(tmp_path, text), tmp_path)
    problems = [str(p) for p in check_inventories(portfolio, tmp_path)]
    assert len(problems) == 1 and problems[0].startswith("portfolio.yml:5:")
    assert "no host of inventories/production.yml is site 'shop-aa' (did you mean 'shop-a'?)" in problems[0]


def test_a_broken_inventory_is_reported_in_its_own_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "inventories" / "acme-staging.yml").write_text("all:\n  hostz: {}\n")
    problems = [str(p) for p in check_inventories(load_portfolio(path, tmp_path), tmp_path)]
    assert any(p.startswith("inventories/acme-staging.yml:2:3") for p in problems)


def test_validate_checks_the_whole_portfolio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from maintkit.cli import cli

    monkeypatch.chdir(tmp_path)
    _write(tmp_path)
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert "2 client(s), 2 site(s), 3 site environment(s) (production, staging)" in result.output
    (tmp_path / "inventories" / "acme-staging.yml").write_text(
        "all:\n  hosts:\n    other: {connection: local}\n"
    )
    result = CliRunner().invoke(cli, ["validate", "-P", "portfolio.yml"])
    assert result.exit_code == 2
    assert "portfolio.yml:16:11:" in result.output and "is site 'shop'" in result.output


def test_the_availability_target_is_inherited_and_must_be_a_percentage(tmp_path: Path) -> None:
    text = PORTFOLIO.replace(
        "  timezone: Europe/Paris\n", "  timezone: Europe/Paris\n  availability_percent: 99.5\n"
    )
    text = text.replace(
        "        rpo_hours: 12\n", "        rpo_hours: 12\n        availability_percent: 98\n"
    )
    production = {e.key: e for e in load_portfolio(_write(tmp_path, text), tmp_path).select("production")}
    assert production["acme/shop-a/production"].objectives.availability_percent == 98
    assert production["beta/shop-b/production"].objectives.availability_percent == 99.5
    bad = PORTFOLIO.replace(
        "  timezone: Europe/Paris\n", "  timezone: Europe/Paris\n  availability_percent: 150\n"
    )
    assert any(
        p.startswith("portfolio.yml:7:") and "availability_percent must be a percentage" in p
        for p in _problems(tmp_path, bad)
    )
