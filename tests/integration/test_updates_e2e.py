"""Updates end to end: staging update, promotion to production, rollbacks, on the fixture shop.

Real composer (offline path repository), PHP (``bin/magento``-compatible console, ``php -S``
storefront reading MariaDB), MariaDB and sshd; nothing is mocked. Staging is ``stage1``, production
``prod1``: separate Unix users (homes, site roots) and separate databases.

"Identical database" is checked by comparing ``mariadb-dump --skip-dump-date --skip-comments``
output before and after: schema and data of every table, routines, triggers, events. Nothing is
excluded: a restore replaces every table, so even AUTO_INCREMENT counters come back.
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

from maintkit.updates import promotable as prom
from tests.integration.helpers import events, run_cli, start_cli, wait_for, write_playbook
from tests.manual_steps import printed_commands
from tests.mariadb import MariaDBServer, mariadb_fixture
from tests.shop import FAIL_MARKER, WAITING_MARKER, Shop, build_template, composer_env, dump, installed_shop
from tests.sshd import SSHHost

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module", seed=None)
SITE = "acme-shop"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("shop-template"))


@pytest.fixture
def shops(
    template: Path, clean_homes: dict[str, SSHHost], mariadb: MariaDBServer
) -> Iterator[dict[str, Shop]]:
    suffix = uuid.uuid4().hex[:8]
    with (
        installed_shop(template, clean_homes["stage1"], mariadb, f"mkupd_stage_{suffix}") as stage,
        installed_shop(template, clean_homes["prod1"], mariadb, f"mkupd_prod_{suffix}") as prod,
    ):
        yield {"stage1": stage, "prod1": prod}


@pytest.fixture
def inventories(tmp_path: Path, ssh_inventory: Path, shops: dict[str, Shop]) -> Path:
    """``inventories/staging.yml`` (stage1) and ``inventories/production.yml`` (prod1), as a team has
    them: one file per environment, both naming the same site and the same storage target."""
    data = yaml.safe_load(ssh_inventory.read_text())
    folder = tmp_path / "inventories"
    folder.mkdir()
    for group, name in (("staging", "stage1"), ("production", "prod1")):
        shop = shops[name]
        host = data["all"]["children"][group]["hosts"][name]
        host.update(
            release_root=str(shop.root), smoke_url=shop.url, composer_env=composer_env(shop.host.home)
        )
        env = {
            "all": {
                "vars": {
                    **data["all"]["vars"],
                    "site": SITE,
                    "storage": [{"name": "local", "type": "local", "path": str(tmp_path / "backups")}],
                    "smoke_contains": ["Acme Shop", "Mug"],
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


def update(tmp_path: Path, package: str, *extra: str) -> Any:
    return maintkit(
        tmp_path, "run", "update-magento", "--env", "staging", "--var", f"packages={package}", *extra
    )


def promote(tmp_path: Path, *extra: str) -> Any:
    return maintkit(tmp_path, "run", "promote", "--env", "production", *extra)


def output(result: Any) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def schema_versions(mariadb: MariaDBServer, database: str) -> dict[str, str]:
    return dict(mariadb.sql("SELECT module, schema_version FROM setup_module ORDER BY module;", database))


def records(tmp_path: Path) -> list[str]:
    folder = tmp_path / "backups" / SITE / "staging" / "promotable"
    return sorted(p.name for p in folder.iterdir() if (p / "record.json").exists()) if folder.is_dir() else []


def test_a_update_on_staging_then_promote_installs_exactly_that_lock(tmp_path, inventories, shops, mariadb):
    stage, prod = shops["stage1"], shops["prod1"]
    first = stage.current
    assert (
        "banner blue" not in stage.get()[1]
        and schema_versions(mariadb, stage.database)["Acme_Banner"] == "1.0.0"
    )

    # --check tells the truth: banner 1.1 carries a schema change, so setup:upgrade WILL run (the
    # status commands on current would say "not needed": they answer for the installed code). It
    # finds out on a throw-away copy, and leaves current, the history and the database as they were.
    tree = sorted(str(p.relative_to(stage.root)) for p in stage.root.rglob("*") if "var/log" not in str(p))
    lock = (stage.release() / "composer.lock").read_bytes()
    database = dump(mariadb, stage.database)
    plan = update(tmp_path, "acme/module-banner:1.1.*", "--check")
    assert plan.returncode == 0, output(plan)
    assert "would move: acme/module-banner 1.0.0 → 1.1.0" in plan.stdout
    assert "setup:upgrade WILL run after the update (database schema of the new code)" in plan.stdout
    assert "releases/.maintkit-check-" in plan.stdout  # the copy it worked in, named as such
    assert stage.current == first and not records(tmp_path)
    assert (
        sorted(str(p.relative_to(stage.root)) for p in stage.root.rglob("*") if "var/log" not in str(p))
        == tree
    )
    assert (stage.release() / "composer.lock").read_bytes() == lock
    assert dump(mariadb, stage.database) == database
    assert not (stage.root / ".maintkit/releases.json").exists()
    # and for an update that moves nothing it says so
    quiet = update(tmp_path, "acme/module-banner:1.0.*", "--check")
    assert quiet.returncode == 0, output(quiet)
    assert "would move: nothing" in quiet.stdout
    assert "setup:upgrade not needed after the update" in quiet.stdout, quiet.stdout

    updated = update(tmp_path, "acme/module-banner:1.1.*")
    assert updated.returncode == 0, output(updated)
    release = stage.current
    assert release != first
    status, page = stage.get()
    assert status == 200 and "banner green" in page and "Acme_Banner@1.1.0" in page
    assert schema_versions(mariadb, stage.database) == {"Acme_Banner": "1.1.0", "Acme_Reviews": "1.0.0"}
    assert "color" in {r[0] for r in mariadb.sql("SHOW COLUMNS FROM acme_banner;", stage.database)}
    assert "Status: maintenance mode is not active" in stage.magento("maintenance:status").stdout
    journal = events(tmp_path / "journal")
    ran = {e["step"]: e["status"] for e in journal if e["event"] == "step_end" and e["section"] == "steps"}
    assert ran["setup:upgrade"] == "changed"  # as --check said it would
    moved = next(e for e in journal if e["event"] == "step_end" and e["step"] == "composer update")
    assert moved["data"]["moved"] == [
        {"package": "acme/module-banner", "old": "1.0.0", "new": "1.1.0", "kind": "update"}
    ]
    # the promotable record: the release's composer.lock and composer.json, smoke results, run id
    [record_id] = records(tmp_path)
    folder = tmp_path / "backups" / SITE / "staging" / "promotable" / record_id
    record = json.loads((folder / "record.json").read_text())
    assert record_id == release and record["host"] == "stage1" and record["run_id"] == journal[0]["run_id"]
    assert record["smoke"][0]["status"] == 200 and not record["smoke"][0]["failed"]
    assert (folder / "composer.lock").read_bytes() == (stage.release() / "composer.lock").read_bytes()
    # hard links where safe, real copies where composer writes
    old, new = stage.release(first), stage.release()
    assert (old / "lib/Shop.php").stat().st_ino == (new / "lib/Shop.php").stat().st_ino
    assert (old / "composer.lock").stat().st_ino != (new / "composer.lock").stat().st_ino
    assert (new / "app/etc/env.php").resolve() == (stage.root / "shared/app/etc/env.php").resolve()

    prod_first = prod.current
    promoted = promote(tmp_path)
    assert promoted.returncode == 0, output(promoted)
    assert prod.current != prod_first
    assert (prod.release() / "composer.lock").read_bytes() == (stage.release() / "composer.lock").read_bytes()
    assert (prod.release() / "composer.json").read_bytes() == (stage.release() / "composer.json").read_bytes()
    status, page = prod.get()
    assert status == 200 and "banner green" in page
    assert schema_versions(mariadb, prod.database)["Acme_Banner"] == "1.1.0"

    rows = []
    for env in ("staging", "production"):
        listing = run_cli("releases", "--env", env, "--output", "json", cwd=tmp_path)
        assert listing.returncode == 0, output(listing)
        rows += [json.loads(line) for line in listing.stdout.splitlines()]
    text = run_cli("releases", "--env", "staging", cwd=tmp_path).stdout
    assert release in text and "current" in text and "yes" in text
    staged = {r["id"]: r for r in rows if r["host"] == "stage1"}
    assert staged[release]["current"] and staged[release]["promotable"]
    assert staged[first]["state"] == "old" and not staged[first]["current"]
    prod_rows = {r["id"]: r for r in rows if r["host"] == "prod1"}
    assert prod_rows[prod.current]["promoted_from"] == record_id

    # promoting the same record again is refused: production already runs it
    again = promote(tmp_path)
    assert again.returncode == 1 and "already runs promotable record" in again.stdout
    print(f"\nmeasured: update on staging {updated.seconds:.1f}s, promote {promoted.seconds:.1f}s")


def test_b_a_version_that_breaks_the_page_is_rolled_back_on_staging(tmp_path, inventories, shops, mariadb):
    stage = shops["stage1"]
    first = stage.current
    before = dump(mariadb, stage.database)
    result = update(tmp_path, "acme/module-banner:1.2.*")
    assert result.returncode == 1, output(result)
    # PHP dies half-way through the page: the status is still 200, the content checks catch it
    assert "smoke check" in result.stdout and "body does not contain 'Mug'" in result.stdout
    assert stage.current == first
    assert dump(mariadb, stage.database) == before
    assert schema_versions(mariadb, stage.database)["Acme_Banner"] == "1.0.0"
    status, page = stage.get()
    assert status == 200 and "Acme Shop" in page, page  # maintenance off, old code, old schema
    assert not records(tmp_path)
    statuses = {
        (e["section"], e["step"]): e["status"]
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
    }
    assert statuses[("steps", "setup:upgrade")] == "changed"
    assert statuses[("rollback", "switch current back to " + first)] == "changed"
    assert statuses[("rollback", "maintenance off")] == "changed"
    history = json.loads((stage.root / ".maintkit/releases.json").read_text())
    failed = [r for r in history["releases"] if r["state"] == "failed"]
    assert len(failed) == 1 and history["current"] == first


def test_c_promote_refuses_without_a_record_and_with_a_stale_one(tmp_path, inventories, shops):
    prod = shops["prod1"]
    first = prod.current
    refused = promote(tmp_path)
    assert refused.returncode == 1, output(refused)
    assert "refusing to promote: there is no promotable record" in refused.stdout

    # a record staging made ten days ago
    from maintkit.storage.local import LocalTarget

    made = prom.now_utc().replace(microsecond=0) - prom.parse_age("10d")
    stale = prom.Record(
        record_id=made.strftime("%Y%m%dT%H%M%SZ"),
        site=SITE,
        env="staging",
        host="stage1",
        created=made.isoformat(),
        cms="magento",
        run_id="old-run",
    )
    target = LocalTarget("local", tmp_path / "backups")
    prom.write_record([target], stale, {"composer.lock": b"{}", "composer.json": b"{}"})
    refused = promote(tmp_path)
    assert refused.returncode == 1, output(refused)
    assert f"the promotable record {stale.record_id} is stale" in refused.stdout
    assert "the limit is 7.0d" in refused.stdout
    assert prod.current == first
    assert not (tmp_path / "backups" / SITE / "production").exists()  # not even a snapshot was taken
    ends = [e for e in events(tmp_path / "journal") if e["event"] == "step_end"]
    assert [e["step"] for e in ends if e["section"] == "steps"] == [
        "require a promotable record from staging"
    ]
    assert {e["status"] for e in ends if e["section"] == "rollback"} == {"skipped"}  # nothing to undo


def staging_record(tmp_path: Path) -> str:
    """Update staging to banner 1.1 (what production will promote); return the record id."""
    result = update(tmp_path, "acme/module-banner:1.1.*")
    assert result.returncode == 0, output(result)
    [record_id] = records(tmp_path)
    return record_id


def test_d_a_failure_inside_setup_upgrade_on_production_restores_code_and_database(
    tmp_path, inventories, shops, mariadb
):
    prod = shops["prod1"]
    staging_record(tmp_path)
    first = prod.current
    before = dump(mariadb, prod.database)
    (prod.host.home / FAIL_MARKER).write_text("fail\n")
    result = promote(tmp_path)
    assert result.returncode == 1, output(result)
    assert "simulated failure in setup:upgrade" in result.stdout
    assert prod.current == first
    # setup:upgrade had applied Acme_Banner 1.1's schema before it died: the restore took it back
    assert dump(mariadb, prod.database) == before
    status, page = prod.get()
    assert status == 200 and "Acme Shop" in page and "Mug" in page, page
    statuses = {
        (e["section"], e["step"]): e["status"]
        for e in events(tmp_path / "journal")
        if e["event"] == "step_end"
    }
    assert statuses[("steps", "setup:upgrade")] == "failed"
    restore = next(k for k in statuses if k[0] == "rollback" and k[1].startswith("restore the database"))
    assert statuses[restore] == "changed"
    assert statuses[("rollback", "maintenance off")] == "changed"


def test_e_a_rollback_that_cannot_finish_exits_3_and_names_the_manual_steps(
    tmp_path, inventories, shops, mariadb
):
    prod = shops["prod1"]
    staging_record(tmp_path)
    first = prod.current
    go_on = prod.host.home / "go-on"  # where the host user can see it
    (prod.host.home / FAIL_MARKER).write_text(f"wait:{go_on}\n")
    process = start_cli(
        "run", "promote", "--env", "production", "--journal-dir", tmp_path / "journal", cwd=tmp_path
    )
    try:
        wait_for(
            lambda: (prod.host.home / WAITING_MARKER).exists(), timeout=60, what="setup:upgrade to start"
        )
        # the pre-promote snapshot disappears while setup:upgrade runs (a retention job, a hand)
        snapshots = tmp_path / "backups" / SITE / "production"
        [snapshot_id] = [p.name for p in snapshots.iterdir() if p.name != "promotable"]
        for path in sorted((snapshots / snapshot_id).iterdir()):
            path.unlink()
        (snapshots / snapshot_id).rmdir()
        go_on.touch()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, f"{stdout}\n{stderr}"
    assert "THE ROLLBACK DID NOT FINISH" in stdout
    assert f"restore the database from the pre-promote snapshot {snapshot_id}" in stdout
    assert f"--with-database {snapshot_id} --end-maintenance" in stdout  # the manual steps, rendered
    assert prod.current == first  # the code did go back
    status, _page = prod.get()
    assert status == 503  # still in maintenance: the old code must not meet the upgraded schema
    [manual] = [e for e in events(tmp_path / "journal") if e["event"] == "manual_steps"]
    assert manual["rollback_failed_step"].startswith("restore the database")
    assert manual["not_done"] == [
        manual["rollback_failed_step"],
        "after the switch back (after_switch_cmd)",
        "cache flush",
        "maintenance off",
    ]
    assert manual["rolled_back"] == [f"switch current back to {first}"]
    assert len(manual["instructions"]) == 2


def test_rollback_by_hand_restores_the_previous_release_and_the_database(
    tmp_path, inventories, shops, mariadb
):
    stage = shops["stage1"]
    first = stage.current
    before = dump(mariadb, stage.database)
    staging_record(tmp_path)
    updated = stage.current
    [snapshot_id] = [
        p.name for p in (tmp_path / "backups" / SITE / "staging").iterdir() if p.name != "promotable"
    ]
    result = maintkit(tmp_path, "rollback", "--env", "staging", "--with-database", snapshot_id)
    assert result.returncode == 0, output(result)
    assert stage.current == first
    assert dump(mariadb, stage.database) == before
    status, page = stage.get()
    assert status == 200 and "banner green" not in page and "Mug" in page
    history = json.loads((stage.root / ".maintkit/releases.json").read_text())
    assert {r["id"]: r["state"] for r in history["releases"]}[updated] == "failed"


def update_whose_rollback_cannot_restore(tmp_path: Path, stage: Shop, package: str) -> tuple[Any, str, Path]:
    """Run update-magento on staging with setup:upgrade failing half-way while the pre-update
    snapshot is moved out of storage: the rollback switches back, cannot restore, exits 3.
    Return (the finished process, the snapshot id, where the snapshot folder was moved)."""
    go_on = stage.host.home / "go-on"
    (stage.host.home / FAIL_MARKER).write_text(f"wait:{go_on}\n")
    process = start_cli(
        "run", "update-magento", "--env", "staging", "--var", f"packages={package}",
        "--journal-dir", tmp_path / "journal", cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: (stage.host.home / WAITING_MARKER).exists(), timeout=60, what="setup:upgrade")
        snapshots = tmp_path / "backups" / SITE / "staging"
        snapshot_id = max(p.name for p in snapshots.iterdir() if p.name != "promotable")
        away = tmp_path / "away" / snapshot_id
        away.parent.mkdir()
        (snapshots / snapshot_id).rename(away)
        go_on.touch()
        process.stdout_text, process.stderr_text = process.communicate(timeout=120)  # type: ignore[attr-defined]
    finally:
        if process.poll() is None:
            process.kill()
    (stage.host.home / FAIL_MARKER).unlink()
    (stage.host.home / WAITING_MARKER).unlink(missing_ok=True)
    return process, snapshot_id, away


def test_the_printed_manual_steps_bring_the_shop_back_when_followed_to_the_letter(
    tmp_path, inventories, shops, mariadb
):
    """Exit 3 (the snapshot was out of reach during the rollback), the storage comes back, and
    the printed command, run exactly as printed, finishes the job; a later failing update can still
    switch back (the history was not broken by it)."""
    stage = shops["stage1"]
    first = stage.current
    before = dump(mariadb, stage.database)
    process, snapshot_id, away = update_whose_rollback_cannot_restore(
        tmp_path, stage, "acme/module-banner:1.1.*"
    )
    assert process.returncode == 3, f"{process.stdout_text}\n{process.stderr_text}"  # type: ignore[attr-defined]
    assert stage.current == first and dump(mariadb, stage.database) != before  # code back, schema not
    assert stage.get()[0] == 503
    [manual] = [e for e in events(tmp_path / "journal") if e["event"] == "manual_steps"]
    first_step = manual["instructions"][0]
    assert first_step in process.stdout_text  # type: ignore[attr-defined]  # printed as journalled
    [command] = printed_commands(first_step)
    assert command == [
        "rollback", "--env", "staging", "--limit", "stage1", "--to", first,
        "--with-database", snapshot_id, "--end-maintenance",
    ]  # fmt: skip

    away.rename(tmp_path / "backups" / SITE / "staging" / snapshot_id)  # the storage is back
    done = run_cli(*command, cwd=tmp_path)  # exactly as printed, from the inventories' folder
    assert done.returncode == 0, output(done)
    assert stage.current == first
    assert dump(mariadb, stage.database) == before
    status, page = stage.get()
    assert status == 200 and "Mug" in page and "banner green" not in page, page
    assert "Status: maintenance mode is not active" in stage.magento("maintenance:status").stdout
    history = json.loads((stage.root / ".maintkit/releases.json").read_text())
    states = {r["id"]: r["state"] for r in history["releases"]}
    assert states[first] == "current" and list(states.values()).count("failed") == 1

    # the next update that fails still switches back (exit 1, not 3)
    again = update(tmp_path, "acme/module-banner:1.2.*")
    assert again.returncode == 1, output(again)
    assert stage.current == first and dump(mariadb, stage.database) == before
    assert stage.get()[0] == 200


def test_the_fallback_step_restores_the_newest_snapshot_before_a_lost_pre_update_snapshot(
    tmp_path, inventories, shops, mariadb
):
    """The pre-update snapshot is gone for good: the printed fallback (before:ID) restores the
    snapshot taken before it, with the update's own inventory (no `database:` variable)."""
    stage = shops["stage1"]
    first = stage.current
    before = dump(mariadb, stage.database)
    book = {
        "name": "db-snapshot",
        "hosts": "all",
        "steps": [
            {
                "name": "snapshot",
                "snapshot": {"database": {"from": "magento", "root": str(stage.root / "current")}},
            }
        ],
    }
    nightly = maintkit(tmp_path, "run", write_playbook(tmp_path, book), "--env", "staging")
    assert nightly.returncode == 0, output(nightly)
    time.sleep(1.1)  # snapshot ids are to the second
    process, _snapshot_id, _away = update_whose_rollback_cannot_restore(
        tmp_path, stage, "acme/module-banner:1.1.*"
    )
    assert process.returncode == 3, f"{process.stdout_text}\n{process.stderr_text}"  # type: ignore[attr-defined]
    [manual] = [e for e in events(tmp_path / "journal") if e["event"] == "manual_steps"]
    fallback = manual["instructions"][1]
    commands = printed_commands(fallback)
    assert [c[0] for c in commands] == ["snapshots", "rollback"], fallback
    for command in commands:
        result = run_cli(*command, cwd=tmp_path)  # exactly as printed
        assert result.returncode == 0, output(result)
    assert stage.current == first and dump(mariadb, stage.database) == before
    status, page = stage.get()
    assert status == 200 and "Mug" in page, page


def test_an_update_refuses_before_anything_moves_when_its_rollback_could_not_restore(
    tmp_path, inventories, shops, mariadb
):
    """The shop's database user lacks the grant on NAME_mkrestore: the update stops right after the
    snapshot (exit 1), before any release, maintenance or schema change, printing the exact GRANT;
    run as printed, that GRANT is enough for the same update to go through."""
    stage = shops["stage1"]
    first = stage.current
    before = dump(mariadb, stage.database)
    staging = f"{stage.database}_mkrestore"
    mariadb.sql(f"REVOKE ALL PRIVILEGES ON `{staging}`.* FROM 'mkupd_shop'@'%';")
    (stage.root / "shared/var/export").rmdir()  # and a shared path the release links is missing

    refused = update(tmp_path, "acme/module-banner:1.1.*")
    assert refused.returncode == 1, output(refused)
    grant = f"GRANT ALL PRIVILEGES ON `{staging.replace('_', chr(92) + '_')}`.* TO 'mkupd_shop'@'%';"
    assert grant in refused.stdout, refused.stdout
    assert "cannot CREATE DATABASE on the staging database" in refused.stdout
    assert f"shared path missing: {stage.root}/shared/var/export" in refused.stdout
    ends = [e for e in events(tmp_path / "journal") if e["event"] == "step_end" and e["section"] == "steps"]
    assert [e["step"] for e in ends][-1].startswith("preflight") and ends[-1]["status"] == "failed"
    # nothing moved: no release, no history entry, same code, same database, not in maintenance
    assert stage.current == first and sorted(p.name for p in (stage.root / "releases").iterdir()) == [first]
    assert not (stage.root / ".maintkit/releases.json").exists()
    assert dump(mariadb, stage.database) == before
    assert stage.get()[0] == 200
    assert not mariadb.sql(f"SHOW DATABASES LIKE '{staging}';")

    mariadb.sql(grant)  # exactly what was printed
    (stage.root / "shared/var/export").mkdir()
    # a staging database left by an earlier restore may hold the only restored copy: refused too
    mariadb.sql(f"CREATE DATABASE `{staging}`; CREATE TABLE `{staging}`.kept (id INT);")
    left = update(tmp_path, "acme/module-banner:1.1.*")
    assert left.returncode == 1 and f"the staging database {staging} exists already" in left.stdout, output(
        left
    )
    assert mariadb.sql(f"SHOW TABLES FROM `{staging}`;") == [("kept",)]  # not dropped by maintkit
    mariadb.drop_database(staging)
    updated = update(tmp_path, "acme/module-banner:1.1.*")
    assert updated.returncode == 0, output(updated)
    assert stage.current != first
