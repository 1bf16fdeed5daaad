"""A fleet's fork server builds the shared inventory once (:mod:`maintkit.config.ahead`).

What must hold: a site's run gets exactly what building gives (hosts, groups, variables, where each
variable was written), a copy of its own, and any change to any input file since (the inventory,
a ``host_vars`` or ``group_vars`` file) means building again, not serving the old result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maintkit.config import ahead
from maintkit.config.inventory import build_ahead, load_inventory_with_origins
from maintkit.model.problems import InvalidInput


@pytest.fixture(autouse=True)
def _forget() -> None:
    ahead._BUILT.clear()
    yield
    ahead._BUILT.clear()


def folder_layout(tmp_path: Path) -> Path:
    folder = tmp_path / "inventories" / "production"
    (folder / "host_vars").mkdir(parents=True)
    (folder / "group_vars").mkdir()
    (folder / "hosts.yml").write_text(
        "all:\n  children:\n    web:\n      hosts:\n        web1: {ansible_host: 10.0.0.1}\n"
        "        web2: {ansible_host: 10.0.0.2, site: b}\n"
    )
    (folder / "group_vars" / "web.yml").write_text("site: a\nfiles: {root: /srv/a}\n")
    (folder / "host_vars" / "web1.yml").write_text("ansible_port: 2222\n")
    return tmp_path


def test_a_run_gets_what_building_gives_as_a_copy_of_its_own(tmp_path: Path) -> None:
    cwd = folder_layout(tmp_path)
    build_ahead("production", None, cwd)
    assert len(ahead._BUILT) == 1
    first, first_origins = load_inventory_with_origins("production", None, cwd)
    second, _ = load_inventory_with_origins("production", None, cwd)
    ahead._BUILT.clear()
    built, built_origins = load_inventory_with_origins("production", None, cwd)
    assert first == built and first_origins == built_origins
    assert first.hosts["web1"].port == 2222 and first.hosts["web2"].vars["site"] == "b"
    assert first_origins["web1"]["site"].file.endswith("group_vars/web.yml")
    assert first is not second and first.hosts["web1"] is not second.hosts["web1"]
    first.hosts["web1"].vars["site"] = "changed by one run"
    assert second.hosts["web1"].vars["site"] == "a"


@pytest.mark.parametrize(
    "changed", ["hosts.yml", "host_vars/web1.yml", "group_vars/web.yml", "host_vars/web2.yml"]
)
def test_any_input_changed_since_is_read_again(tmp_path: Path, changed: str) -> None:
    cwd = folder_layout(tmp_path)
    build_ahead("production", None, cwd)
    path = cwd / "inventories" / "production" / changed
    if changed == "hosts.yml":
        path.write_text(path.read_text().replace("10.0.0.1", "10.9.9.9"))
    else:  # an edited vars file, or a new one
        path.write_text((path.read_text() if path.exists() else "") + "note: new\n")
    inventory, _ = load_inventory_with_origins("production", None, cwd)
    if changed == "hosts.yml":
        assert inventory.hosts["web1"].address == "10.9.9.9"
    else:
        host = "web2" if changed == "host_vars/web2.yml" else "web1"
        assert inventory.hosts[host].vars["note"] == "new"


def test_an_invalid_inventory_is_not_built_ahead_and_the_run_reports_it(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "production.yml").write_text("all:\n  hosts:\n    web1: [1, 2]\n")
    with pytest.raises(InvalidInput):
        build_ahead("production", None, tmp_path)
    assert not ahead._BUILT
    with pytest.raises(InvalidInput) as raised:
        load_inventory_with_origins("production", None, tmp_path)
    assert raised.value.problems[0].line == 3
