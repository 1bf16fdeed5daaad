"""PrestaShop updates end to end: update-prestashop on staging, promote-prestashop on production, rollback.

Real sshd, MariaDB and PHP; nothing is mocked. The 1-click upgrade module's CLI is the fixture
console ``tests/fixtures/prestashop/site/modules/autoupgrade/bin/console`` (autoupgrade v7's
commands, options, configuration keys, messages and exit codes; see ``tests/prestashop.py`` for
why), upgrading from release archives in the module's local channel folder. Staging is ``stage1``,
production ``prod1``: separate Unix users, shop roots and databases.

"Identical" after a rollback: the database compared with ``mariadb-dump --skip-dump-date
--skip-comments`` (schema and data of every table, nothing excluded), the files by the SHA-256 and
mode of every file under the shop root (var/cache aside, as the snapshot leaves it out).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import events, run_cli
from tests.mariadb import MariaDBServer, mariadb_fixture
from tests.prestashop import ADMIN_DIR, Shop, installed_shop
from tests.shop import dump, require_php_and_composer
from tests.sshd import SSHHost

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module", seed=None)
SITE = "acme-prestashop"


def local_channel(version: str) -> dict[str, str]:
    """The module's configuration for updating to ``version`` from its local channel."""
    return {
        "channel": "local",
        "archive_zip": f"prestashop_{version}.zip",
        "archive_xml": f"prestashop_{version}.xml",
    }


@pytest.fixture
def shops(clean_homes: dict[str, SSHHost], mariadb: MariaDBServer) -> Iterator[dict[str, Shop]]:
    require_php_and_composer()
    suffix = uuid.uuid4().hex[:8]
    with (
        installed_shop(clean_homes["stage1"], mariadb, f"mkps_stage_{suffix}") as stage,
        installed_shop(clean_homes["prod1"], mariadb, f"mkps_prod_{suffix}") as prod,
    ):
        yield {"stage1": stage, "prod1": prod}


@pytest.fixture
def inventories(tmp_path: Path, ssh_inventory: Path, shops: dict[str, Shop]) -> Path:
    """One inventory per environment, naming the same site and storage target; staging updates to
    8.1.6 from the local channel (the test machine cannot reach PrestaShop's distribution API)."""
    data = yaml.safe_load(ssh_inventory.read_text())
    folder = tmp_path / "inventories"
    folder.mkdir()
    for group, name in (("staging", "stage1"), ("production", "prod1")):
        shop = shops[name]
        host = data["all"]["children"][group]["hosts"][name]
        host.update(ps_root=str(shop.root), ps_admin_dir=ADMIN_DIR, smoke_url=shop.url)
        env = {
            "all": {
                "vars": {
                    **data["all"]["vars"],
                    "site": SITE,
                    "storage": [{"name": "local", "type": "local", "path": str(tmp_path / "backups")}],
                    "smoke_contains": ["Acme PrestaShop", "Mug"],
                    "prestashop_upgrade_config": local_channel("8.1.6"),
                },
                "children": {group: {"hosts": {name: host}}},
            }
        }
        (folder / f"{group}.yml").write_text(yaml.safe_dump(env, sort_keys=False))
    return folder


def maintkit(tmp_path: Path, *args: str | Path) -> Any:
    started = time.monotonic()
    result = run_cli(*args, "--journal-dir", tmp_path / "journal", cwd=tmp_path)
    result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def output(result: Any) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def records(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "backups" / SITE / "staging" / "promotable"
    return sorted(p for p in folder.iterdir() if (p / "record.json").exists()) if folder.is_dir() else []


def step_statuses(tmp_path: Path) -> dict[tuple[str, str], str]:
    return {
        (e["section"], e["step"]): e["status"]
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
    }


def config_value(mariadb: MariaDBServer, shop: Shop, name: str) -> str:
    rows = mariadb.sql(f"SELECT value FROM ps_configuration WHERE name = '{name}';", shop.database)
    return str(rows[0][0])


def test_update_on_staging_then_promote_installs_exactly_that_version(tmp_path, inventories, shops, mariadb):
    stage, prod = shops["stage1"], shops["prod1"]
    status, page = stage.get()
    assert status == 200 and "ps-8-1-5" in page and '<p class="product">Mug</p>' in page, page

    updated = maintkit(tmp_path, "run", "update-prestashop", "--env", "staging")
    assert updated.returncode == 0, output(updated)
    assert stage.version() == "8.1.6"
    status, page = stage.get()
    assert status == 200 and "ps-8-1-6" in page and "Mug (MPN-1)" in page, page
    # the upgrade's SQL ran (new column, new row) and PS_VERSION_DB moved; maintenance is over
    assert config_value(mariadb, stage, "PS_VERSION_DB") == "8.1.6"
    assert config_value(mariadb, stage, "PS_MPN_ENABLED") == "1"
    assert config_value(mariadb, stage, "PS_SHOP_ENABLE") == "1"
    statuses = step_statuses(tmp_path)
    assert statuses[("steps", "maintenance on")] == "changed"
    assert statuses[("steps", "update:start")] == "changed"

    [folder] = records(tmp_path)
    record = json.loads((folder / "record.json").read_text())
    assert record["cms"] == "prestashop" and record["host"] == "stage1"
    assert record["versions"] == {"prestashop": "8.1.6"}
    assert record["smoke"][0]["status"] == 200 and not record["smoke"][0]["failed"]

    # production holds the 8.1.7 archive too: promotion must install exactly 8.1.6
    promoted = maintkit(tmp_path, "run", "promote-prestashop", "--env", "production")
    assert promoted.returncode == 0, output(promoted)
    assert prod.version() == "8.1.6"
    assert config_value(mariadb, prod, "PS_VERSION_DB") == "8.1.6"
    assert config_value(mariadb, prod, "PS_SHOP_ENABLE") == "1"
    status, page = prod.get()
    assert status == 200 and "ps-8-1-6" in page and "Mug (MPN-1)" in page, page
    upgrade = next(
        e
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
        and e["step"].startswith("update:start to exactly")
        and e["section"] == "steps"
    )
    assert upgrade["status"] == "changed", upgrade
    assert upgrade["data"]["version_before"] == "8.1.5" and upgrade["data"]["version"] == "8.1.6"
    assert (tmp_path / "backups" / SITE / "production").is_dir()  # the pre-promote snapshot

    # promoting again: production already runs the recorded version, refused before any change
    before, db_before = prod.tree(), dump(mariadb, prod.database)
    again = maintkit(tmp_path, "run", "promote-prestashop", "--env", "production")
    assert again.returncode == 1, output(again)
    assert "the shop already runs PrestaShop 8.1.6" in again.stdout
    assert prod.tree() == before and dump(mariadb, prod.database) == db_before
    print(f"\nmeasured: update-prestashop {updated.seconds:.1f}s, promote-prestashop {promoted.seconds:.1f}s")


def test_a_breaking_version_is_rolled_back_files_and_database(tmp_path, inventories, shops, mariadb):
    stage = shops["stage1"]
    inventory = inventories / "staging.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["prestashop_upgrade_config"] = local_channel("8.1.7")
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    files_before, db_before = stage.tree(), dump(mariadb, stage.database)

    result = maintkit(tmp_path, "run", "update-prestashop", "--env", "staging")
    assert result.returncode == 1, output(result)
    assert "smoke check" in result.stdout and "body does not contain 'Mug'" in result.stdout
    statuses = step_statuses(tmp_path)
    assert statuses[("steps", "update:start")] == "changed"  # 8.1.7 was installed (schema altered)
    restore = next(k for k in statuses if k[0] == "rollback" and k[1].startswith("restore the pre-update"))
    assert statuses[restore] == "changed"
    assert statuses[("rollback", "maintenance off")] in ("changed", "ok")

    assert dump(mariadb, stage.database) == db_before
    assert stage.tree() == files_before
    assert stage.version() == "8.1.5"
    status, page = stage.get()
    assert status == 200 and "ps-8-1-5" in page and "Mug" in page, page
    assert not records(tmp_path)


def test_promote_prestashop_refuses_without_a_record_and_without_the_archive(tmp_path, inventories, shops):
    prod = shops["prod1"]
    before = prod.tree()
    refused = maintkit(tmp_path, "run", "promote-prestashop", "--env", "production")
    assert refused.returncode == 1, output(refused)
    assert "refusing to promote: there is no promotable record" in refused.stdout
    assert prod.tree() == before
    assert not (tmp_path / "backups" / SITE / "production").exists()

    # a record for a version production has no archive for: a clear reason, nothing changed
    updated = maintkit(tmp_path, "run", "update-prestashop", "--env", "staging")
    assert updated.returncode == 0, output(updated)
    (prod.download / "prestashop_8.1.6.zip").unlink()
    before = prod.tree()
    refused = maintkit(tmp_path, "run", "promote-prestashop", "--env", "production")
    assert refused.returncode == 1, output(refused)
    assert "cannot pin PrestaShop 8.1.6" in refused.stdout and "prestashop_8.1.6.zip" in refused.stdout
    assert prod.tree() == before and prod.version() == "8.1.5"
    assert not (tmp_path / "backups" / SITE / "production").exists()
