"""WordPress updates end to end: update-wordpress on staging, promote-wordpress on production, rollback.

Real sshd, MariaDB and PHP; nothing is mocked. wp-cli is the fixture console
``tests/fixtures/wordpress/wp`` (wp-cli's commands, options, JSON fields, messages and exit codes;
see ``tests/wordpress.py`` for why), with a local "update source" standing for wordpress.org.
Staging is ``stage1``, production ``prod1``: separate Unix users, site roots and databases.

"Identical" after a rollback: the database compared with ``mariadb-dump --skip-dump-date
--skip-comments`` (schema and data of every table, nothing excluded), the files by the SHA-256 and
mode of every file under the site root.
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

from tests.integration.helpers import events, run_cli, start_cli, wait_for
from tests.manual_steps import printed_commands
from tests.mariadb import MariaDBServer, mariadb_fixture
from tests.shop import dump, require_php_and_composer
from tests.sshd import SSHHost
from tests.wordpress import Site, installed_site

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module", seed=None)
SITE = "acme-wordpress"


@pytest.fixture
def sites(clean_homes: dict[str, SSHHost], mariadb: MariaDBServer) -> Iterator[dict[str, Site]]:
    require_php_and_composer()
    suffix = uuid.uuid4().hex[:8]
    with (
        installed_site(clean_homes["stage1"], mariadb, f"mkwp_stage_{suffix}") as stage,
        installed_site(clean_homes["prod1"], mariadb, f"mkwp_prod_{suffix}") as prod,
    ):
        yield {"stage1": stage, "prod1": prod}


@pytest.fixture
def inventories(tmp_path: Path, ssh_inventory: Path, sites: dict[str, Site]) -> Path:
    """One inventory per environment, naming the same site and storage target."""
    data = yaml.safe_load(ssh_inventory.read_text())
    folder = tmp_path / "inventories"
    folder.mkdir()
    for group, name in (("staging", "stage1"), ("production", "prod1")):
        site = sites[name]
        host = data["all"]["children"][group]["hosts"][name]
        host.update(wp_root=str(site.root), smoke_url=site.url, wp=str(site.wp_path))
        env = {
            "all": {
                "vars": {
                    **data["all"]["vars"],
                    "site": SITE,
                    "storage": [{"name": "local", "type": "local", "path": str(tmp_path / "backups")}],
                    "smoke_contains": ["Acme WordPress Shop", "Mug"],
                    "wp_exclude": ["shop-reviews"],
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


def versions(site: Site) -> dict[str, Any]:
    plugins = json.loads(site.wp("plugin", "list", "--fields=name,version", "--format=json").stdout)
    themes = json.loads(site.wp("theme", "list", "--fields=name,version", "--format=json").stdout)
    return {
        "core": site.wp("core", "version").stdout.strip(),
        "plugins": {p["name"]: p["version"] for p in plugins},
        "themes": {t["name"]: t["version"] for t in themes},
    }


def step_statuses(tmp_path: Path) -> dict[tuple[str, str], str]:
    return {
        (e["section"], e["step"]): e["status"]
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
    }


def test_update_on_staging_then_promote_installs_exactly_those_versions(
    tmp_path, inventories, sites, mariadb
):
    stage, prod = sites["stage1"], sites["prod1"]
    stage.offer("core", "", "6.4.2")
    stage.offer("plugins", "shop-banner", "1.1.0")
    status, page = stage.get()
    assert status == 200 and "Summer sale</p>" in page and "reviews 1.0.0" in page, page

    updated = maintkit(tmp_path, "run", "update-wordpress", "--env", "staging")
    assert updated.returncode == 0, output(updated)
    expected = {
        "core": "6.4.2",
        "plugins": {"shop-banner": "1.1.0", "shop-reviews": "1.0.0"},  # shop-reviews is excluded
        "themes": {"storefront": "1.0.1"},
    }
    assert versions(stage) == expected
    status, page = stage.get()
    assert status == 200 and "(banner green)" in page and "core-6-4-2" in page, page
    # the smoke request ran the plugin's own upgrade routine; core update-db moved db_version
    assert [
        r[0]
        for r in mariadb.sql(
            "SELECT option_value FROM wp_options WHERE option_name IN ('db_version') ;", stage.database
        )
    ] == ["56658"]
    assert stage.wp("maintenance-mode", "is-active").returncode == 1

    statuses = step_statuses(tmp_path)
    assert statuses[("steps", "verify core and plugin checksums")] == "ok"
    journal = events(tmp_path / "journal")
    plugin_step = next(e for e in journal if e["event"] == "step_end" and e["step"] == "plugin updates")
    assert plugin_step["data"]["updated"] == [{"name": "shop-banner", "old": "1.0.0", "new": "1.1.0"}]
    # WordPress's upgrader took .maintenance away at the end of the update: maintkit put it back
    assert plugin_step["data"]["maintenance_held"] is True

    [folder] = records(tmp_path)
    record = json.loads((folder / "record.json").read_text())
    assert record["cms"] == "wordpress" and record["host"] == "stage1"
    assert {k: record["versions"][k] for k in ("core", "plugins", "themes")} == expected
    assert record["smoke"][0]["status"] == 200 and not record["smoke"][0]["failed"]

    # production: the source offers newer versions (1.2.0, the broken one): promote must not take them
    prod.offer("plugins", "shop-banner", "1.2.0")
    promoted = maintkit(tmp_path, "run", "promote-wordpress", "--env", "production")
    assert promoted.returncode == 0, output(promoted)
    assert versions(prod) == expected
    status, page = prod.get()
    assert status == 200 and "(banner green)" in page and "core-6-4-2" in page, page
    apply = next(
        e
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
        and e["step"] == "install exactly the promotable versions"
        and e.get("host") in (None, "prod1")
    )
    assert apply["status"] == "changed", apply
    assert apply["data"]["installed"] == 3  # core, shop-banner, storefront; shop-reviews already right
    print(f"\nmeasured: update-wordpress {updated.seconds:.1f}s, promote-wordpress {promoted.seconds:.1f}s")


def test_a_breaking_plugin_version_is_rolled_back_files_and_database(tmp_path, inventories, sites, mariadb):
    stage = sites["stage1"]
    stage.offer("plugins", "shop-banner", "1.2.0")
    files_before, db_before = stage.tree(), dump(mariadb, stage.database)

    result = maintkit(tmp_path, "run", "update-wordpress", "--env", "staging")
    assert result.returncode == 1, output(result)
    assert "smoke check" in result.stdout and "body does not contain 'Mug'" in result.stdout
    statuses = step_statuses(tmp_path)
    assert statuses[("steps", "plugin updates")] == "changed"
    assert statuses[("rollback", "maintenance off")] in ("changed", "ok")
    restore = next(k for k in statuses if k[0] == "rollback" and k[1].startswith("restore the pre-update"))
    assert statuses[restore] == "changed"

    # the broken plugin's upgrade routine had altered the database on the smoke request: all back
    assert dump(mariadb, stage.database) == db_before
    assert stage.tree() == files_before
    assert versions(stage)["plugins"]["shop-banner"] == "1.0.0"
    status, page = stage.get()
    assert status == 200 and "Summer sale</p>" in page and "Mug" in page, page
    assert not records(tmp_path)


def test_promote_wordpress_refuses_without_a_record(tmp_path, inventories, sites):
    prod = sites["prod1"]
    before = prod.tree()
    refused = maintkit(tmp_path, "run", "promote-wordpress", "--env", "production")
    assert refused.returncode == 1, output(refused)
    assert "refusing to promote: there is no promotable record" in refused.stdout
    assert prod.tree() == before
    assert not (tmp_path / "backups" / SITE / "production").exists()


def test_the_printed_manual_step_restores_the_site_when_its_rollback_could_not(
    tmp_path, inventories, sites, mariadb
):
    """The pre-update snapshot is out of reach while the broken plugin fails the update, so the
    rollback cannot restore (exit 3); with the storage back, the printed command, run exactly as
    printed (`maintkit run restore-site ...`, credentials from wp-config.php, no `database:` or
    `files:` variable in the inventory), brings back the files and the database."""
    stage = sites["stage1"]
    stage.offer("plugins", "shop-banner", "1.2.0")
    files_before, db_before = stage.tree(), dump(mariadb, stage.database)
    # a wp wrapper that holds `plugin update` until the test has moved the snapshot away
    home = stage.host.home
    wrapper = home / "wp-held"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "plugin update" ]; then touch {home}/held; '
        f"while [ ! -e {home}/go-on ]; do sleep 0.05; done; fi\n"
        f'exec {stage.wp_path} "$@"\n'
    )
    wrapper.chmod(0o755)
    process = start_cli(
        "run", "update-wordpress", "--env", "staging", "--var", f"wp={wrapper}",
        "--journal-dir", tmp_path / "journal", cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: (home / "held").exists(), timeout=60, what="plugin update")
        snapshots = tmp_path / "backups" / SITE / "staging"
        [snapshot_id] = [p.name for p in snapshots.iterdir() if p.name != "promotable"]
        (snapshots / snapshot_id).rename(tmp_path / snapshot_id)
        (home / "go-on").touch()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, f"{stdout}\n{stderr}"
    assert "THE ROLLBACK DID NOT FINISH" in stdout
    assert stage.tree() != files_before or dump(mariadb, stage.database) != db_before
    [manual] = [e for e in events(tmp_path / "journal") if e["event"] == "manual_steps"]
    [command] = printed_commands(manual["instructions"][0])
    assert command[:2] == ["run", "restore-site"] and f"snapshot={snapshot_id}" in command, command

    (tmp_path / snapshot_id).rename(snapshots / snapshot_id)  # the storage is back
    done = run_cli(*command, cwd=tmp_path)  # exactly as printed
    assert done.returncode == 0, output(done)
    assert dump(mariadb, stage.database) == db_before
    assert stage.tree() == files_before
    status, page = stage.get()
    assert status == 200 and "Summer sale</p>" in page and "Mug" in page, page
    assert stage.wp("maintenance-mode", "is-active").returncode == 1
