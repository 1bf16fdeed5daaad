"""Updates: command building (every value quoted), lock diffs, audit thresholds, release operations on
a real folder through the local transport, promotion rules, the manual steps of a failed rollback."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maintkit.actions.audit import AuditParams, composer_audit_command, wordpress_commands
from maintkit.actions.base import StepContext, get_action
from maintkit.actions.composer import ComposerParams, composer_command
from maintkit.actions.magento import MagentoParams, magento_command
from maintkit.actions.maintenance import MaintenanceParams, set_command, status_command
from maintkit.actions.prestashop import PrestashopParams, console_command, pin_refusal
from maintkit.actions.release import ReleaseParams
from maintkit.actions.wp import WpParams, commands
from maintkit.engine.manual import manual_steps
from maintkit.engine.steps import HostState
from maintkit.model.hosts import Host
from maintkit.model.playbooks import Playbook, Step
from maintkit.model.problems import Position
from maintkit.model.results import ActionResult, HostOutcome, StepOutcome
from maintkit.secrets import Redactor
from maintkit.transport.local import LocalTransport
from maintkit.updates import promotable as prom
from maintkit.updates.audit import at_or_above, parse_composer_audit
from maintkit.updates.composerlock import Move, diff_versions, lock_versions, parse_dry_run
from maintkit.updates.releases import History, Release

HOSTILE = 'it\'s $(rm -rf /) `x` "y"; z'


def words(command: str) -> list[str]:
    return shlex.split(command)


class TestComposer:
    def test_every_value_is_quoted(self) -> None:
        p = ComposerParams(command="update", working_dir="/srv/a b", packages=[HOSTILE], env={"K": HOSTILE})
        command = composer_command(p)
        assert command.startswith(f"export K={shlex.quote(HOSTILE)}; cd '/srv/a b' && composer update")
        assert words(command.split("&& ", 1)[1])[-1] == HOSTILE
        assert "--no-interaction" in command and "--with-all-dependencies" in command

    def test_dry_run_and_no_dev(self) -> None:
        p = ComposerParams(command="install", working_dir="~/shop", no_dev=True, packages=["ignored/x"])
        command = composer_command(p, dry_run=True)
        assert command.startswith('cd "$HOME"/shop && ')
        assert words(command.split("&& ", 1)[1]) == [
            "composer",
            "install",
            "--no-interaction",
            "--no-progress",
            "--no-ansi",
            "--no-dev",
            "--dry-run",
        ]

    def test_packages_given_as_one_string_are_split(self) -> None:
        p = ComposerParams(command="update", working_dir="/x", packages="a/b:1.1.*, c/d")  # type: ignore[arg-type]
        assert p.packages == ["a/b:1.1.*", "c/d"]

    def test_lock_diff(self) -> None:
        before = lock_versions(
            json.dumps(
                {"packages": [{"name": "a/b", "version": "1.0.0"}, {"name": "gone/x", "version": "2.0"}]}
            ).encode()
        )
        after = lock_versions(
            json.dumps(
                {
                    "packages": [{"name": "a/b", "version": "1.1.0"}],
                    "packages-dev": [{"name": "new/y", "version": "0.1"}],
                }
            ).encode()
        )
        assert diff_versions(before, after) == [
            Move("a/b", "1.0.0", "1.1.0"),
            Move("gone/x", "2.0", None),
            Move("new/y", None, "0.1"),
        ]
        assert lock_versions(None) == {}

    def test_dry_run_output(self) -> None:
        output = """Loading composer repositories with package information
Updating dependencies
Lock file operations: 1 install, 1 update, 1 removal
  - Removing old/pkg (3.0.0)
  - Locking new/pkg (1.2.3)
  - Upgrading acme/module-banner (1.0.0 => 1.1.0)
Installing dependencies from lock file (including require-dev)
  - Downgrading acme/module-reviews (1.2.0 => 1.1.0)
  - Upgrading acme/module-banner (1.0.0 => 1.1.0): Mirroring from ../../packages
"""
        assert [m.describe() for m in parse_dry_run(output)] == [
            "acme/module-banner 1.0.0 → 1.1.0",
            "acme/module-reviews 1.2.0 → 1.1.0",
            "new/pkg (none) → 1.2.3",
            "old/pkg 3.0.0 → (removed)",
        ]


class TestAudit:
    ADVISORIES = {
        "advisories": {
            "a/b": [
                {"packageName": "a/b", "title": "XSS", "cve": "CVE-1", "severity": "medium"},
                {"packageName": "a/b", "title": "RCE", "cve": None, "severity": "critical"},
            ],
            "c/d": [{"packageName": "c/d", "title": "no severity (composer < 2.6)"}],
        },
        "abandoned": {"old/x": None},
    }

    def test_thresholds_and_unknown_severity(self) -> None:
        advisories, abandoned = parse_composer_audit("warning line\n" + json.dumps(self.ADVISORIES))
        assert abandoned == ["old/x"]
        assert {a.title: a.severity for a in advisories}["no severity (composer < 2.6)"] == "high"
        assert len(at_or_above(advisories, "low")) == 3
        assert [a.title for a in at_or_above(advisories, "critical")] == ["RCE"]
        assert len(at_or_above(advisories, "high")) == 2
        assert at_or_above(advisories, "never") == []

    def test_no_advisories_is_an_empty_list(self) -> None:
        assert parse_composer_audit('{\n    "advisories": []\n}') == ([], [])

    def test_commands(self) -> None:
        command = composer_audit_command(AuditParams(working_dir="/w"))
        assert words(command.split("&& ", 1)[1]) == [
            "composer",
            "audit",
            "--format=json",
            "--locked",
            "--no-interaction",
            "--no-ansi",
            "--no-dev",
        ]
        wp = wordpress_commands(AuditParams(tool="wordpress", working_dir=HOSTILE, strict=True))
        assert [words(c) for c in wp] == [
            ["wp", "core", "verify-checksums", f"--path={HOSTILE}"],
            ["wp", "plugin", "verify-checksums", "--all", f"--path={HOSTILE}", "--strict"],
        ]


class TestCmsCommands:
    def test_magento(self) -> None:
        p = MagentoParams(command="setup:static-content:deploy", args=["-f", HOSTILE], root="/r")
        assert words(magento_command(p).split("&& ", 1)[1]) == [
            "php",
            "bin/magento",
            "setup:static-content:deploy",
            "-f",
            HOSTILE,
            "--no-interaction",
        ]

    def test_maintenance(self) -> None:
        p = MaintenanceParams(cms="wordpress", state="on", root=HOSTILE)  # type: ignore[arg-type]
        assert p.root == [HOSTILE]
        assert words(set_command(p, HOSTILE, True)) == [
            "wp",
            "maintenance-mode",
            "activate",
            "--force",  # plain activate fails when maintenance is already on
            f"--path={HOSTILE}",
        ]
        # off tolerates a site WordPress's upgrader already took out of maintenance
        off = set_command(p, HOSTILE, False)
        assert "is-active" in off and "deactivate" in off and "[ $rc -ne 1 ]" in off
        magento = MaintenanceParams(cms="magento", state="on", root=["/a", "/b"])
        assert "maintenance:status" in status_command(magento, "/a")
        with pytest.raises(ValueError, match="table prefix"):
            MaintenanceParams(cms="prestashop", state="on", root="/p", table_prefix="ps_; DROP")  # type: ignore[arg-type]

    def test_wp(self) -> None:
        update = WpParams(command="plugin-update", root="/w", exclude=["woocommerce", "x y"])
        assert words(commands(update)[0]) == [
            "wp",
            "plugin",
            "update",
            "--all",
            "--exclude=woocommerce,x y",
            "--format=json",
            "--path=/w",
        ]
        apply = WpParams(
            command="apply-versions",
            root="/w",
            versions={"core": "6.5.2", "plugins": {"woocommerce": "8.9.1"}},
        )
        assert [words(c)[1:4] for c in commands(apply)] == [
            ["core", "update", "--version=6.5.2"],
            ["plugin", "install", "woocommerce"],
            ["core", "update-db", "--path=/w"],
        ]

    def test_prestashop_config_travels_in_a_heredoc(self) -> None:
        p = PrestashopParams(
            command="update:start", root="/ps", admin_dir="admin1", config={"channel": HOSTILE}
        )
        command = console_command(p)
        assert '--config-file-path="$cfg" --chain admin1' in command
        assert json.dumps(HOSTILE) in command  # literal, inside the quoted here-document

    def test_prestashop_version_pins_the_local_channel(self) -> None:
        p = PrestashopParams(
            command="update:start",
            root="/ps",
            admin_dir="admin1",
            version="8.1.6",
            config={"disable_non_native_modules": 1},
        )
        assert p.config == {
            "disable_non_native_modules": 1,
            "channel": "local",
            "archive_zip": "prestashop_8.1.6.zip",
            "archive_xml": "prestashop_8.1.6.xml",
        }
        with pytest.raises(ValueError, match="only be pinned with the local channel"):
            PrestashopParams(
                command="update:start",
                root="/ps",
                admin_dir="a",
                version="8.1.6",
                config={"channel": "online"},
            )
        with pytest.raises(ValueError, match="not a PrestaShop version"):
            PrestashopParams(command="update:start", root="/ps", admin_dir="a", version="8.1.6; x")
        with pytest.raises(ValueError, match="not a path"):
            PrestashopParams(
                command="update:start", root="/ps", admin_dir="a", version="8.1.6", archive_zip="../x.zip"
            )

    def test_prestashop_pin_refusals(self) -> None:
        p = PrestashopParams(command="update:check", root="/ps", admin_dir="admin1", version="8.1.6")
        ok = {"current": "8.1.5", "zip": "yes", "xml": "yes", "xml_version": "8.1.6"}
        assert pin_refusal(p, ok) is None
        assert "admin1/autoupgrade/download/prestashop_8.1.6.zip missing" in str(
            pin_refusal(p, {**ok, "zip": "no"})
        )
        assert "describes version 8.1.7" in str(pin_refusal(p, {**ok, "xml_version": "8.1.7"}))
        assert "already runs PrestaShop 8.1.6" in str(pin_refusal(p, {**ok, "current": "8.1.6"}))
        assert "already runs PrestaShop 8.1.10" in str(pin_refusal(p, {**ok, "current": "8.1.10"}))


def test_shipped_prestashop_playbooks_load() -> None:
    from maintkit.config.playbook import load_playbook

    folder = Path(__file__).parents[2] / "playbooks"
    for name in ("update-prestashop", "promote-prestashop"):
        playbook = load_playbook(folder / f"{name}.yml")
        assert playbook.name == name and playbook.rollback


# -- releases on a real folder ---------------------------------------------------------------------


def local_ctx(tmp_path: Path) -> StepContext:
    variables = {
        "playbook_name": "test",
        "maintkit_env": "test",
        "inventory_hostname": "h",
        "storage": [{"name": "local", "type": "local", "path": str(tmp_path / "store")}],
    }
    return StepContext(Host("h", connection="local"), LocalTransport(), variables, Redactor(), "run-1")


def site(tmp_path: Path) -> Path:
    root = tmp_path / "site with space"
    first = root / "releases" / "20200101T000000Z"
    for path, text in {
        "lib/code.php": "code",
        "composer.lock": "{}",
        "vendor/a.php": "a",
        "var/cache/x": "c",
    }.items():
        (first / path).parent.mkdir(parents=True, exist_ok=True)
        (first / path).write_text(text)
    (root / "shared/app/etc").mkdir(parents=True)
    (root / "shared/app/etc/env.php").write_text("env")
    (root / "shared/pub/media").mkdir(parents=True)
    (root / "current").symlink_to("releases/20200101T000000Z")
    return root


def release(ctx: StepContext, **params: Any) -> ActionResult:
    action = get_action("release")
    assert action is not None
    return action.run(ReleaseParams.model_validate(params), ctx)


class TestReleases:
    def test_prepare_switch_rollback_cleanup(self, tmp_path: Path) -> None:
        root, ctx = site(tmp_path), local_ctx(tmp_path)
        lists = {
            "shared": ["app/etc/env.php", "pub/media"],
            "copy": ["vendor", "composer.lock"],
            "clear": ["var/cache"],
        }
        prepared = release(ctx, op="prepare", root=str(root), **lists)
        assert not prepared.failed, prepared.msg
        new, old = Path(prepared.data["path"]), root / "releases/20200101T000000Z"
        assert prepared.data["previous"] == "20200101T000000Z"
        assert (new / "lib/code.php").stat().st_ino == (old / "lib/code.php").stat().st_ino  # hard link
        assert (new / "vendor/a.php").stat().st_ino != (old / "vendor/a.php").stat().st_ino  # real copy
        assert (new / "composer.lock").stat().st_ino != (old / "composer.lock").stat().st_ino
        assert list((new / "var/cache").iterdir()) == [] and (old / "var/cache/x").exists()
        assert os.readlink(new / "app/etc/env.php") == str(root / "shared/app/etc/env.php")
        switched = release(ctx, op="switch", root=str(root), release=prepared.data["id"])
        assert switched.data["previous"] == "20200101T000000Z"
        assert os.readlink(root / "current") == f"releases/{prepared.data['id']}"
        assert not (root / ".current.maintkit-tmp").exists()
        back = release(ctx, op="rollback", root=str(root), release=prepared.data["id"])
        assert back.changed and os.readlink(root / "current") == "releases/20200101T000000Z"
        history = History.parse((root / ".maintkit/releases.json").read_bytes())
        assert history.current == "20200101T000000Z"
        assert history.get(prepared.data["id"]).state == "failed"  # type: ignore[union-attr]
        # a second rollback of the same release changes nothing
        again = release(ctx, op="rollback", root=str(root), release=prepared.data["id"])
        assert not again.changed and os.readlink(root / "current") == "releases/20200101T000000Z"
        cleaned = release(ctx, op="cleanup", root=str(root), keep=1)
        assert cleaned.data["removed"] == [prepared.data["id"]] and not new.exists()
        listed = release(ctx, op="list", root=str(root))
        assert [r["id"] for r in listed.data["releases"]] == ["20200101T000000Z"]

    def test_prepare_refuses_a_site_without_the_layout_and_missing_shared_paths(self, tmp_path: Path) -> None:
        ctx = local_ctx(tmp_path)
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain/current").mkdir()
        with pytest.raises(Exception, match=r"not a symlink|releases layout"):
            release(ctx, op="prepare", root=str(tmp_path / "plain"))
        root = site(tmp_path)
        failed = release(ctx, op="prepare", root=str(root), shared=["var/log"], copy=[], clear=[])
        assert failed.failed and "shared path missing" in failed.msg
        assert [p.name for p in (root / "releases").iterdir()] == ["20200101T000000Z"]  # no half release

    def test_paths_must_stay_inside_the_release(self) -> None:
        with pytest.raises(ValueError, match="inside the release"):
            ReleaseParams(op="prepare", root="/r", shared=["../../etc/passwd"])

    def test_rollback_target_skips_failed_and_removed(self) -> None:
        history = History(
            [
                Release("a", "2026-01-01T00:00:00+00:00", state="old"),
                Release("b", "2026-01-02T00:00:00+00:00", state="failed"),
                Release("c", "2026-01-03T00:00:00+00:00", state="current", from_release="b"),
            ]
        )
        assert history.rollback_target("c") == "a"


# -- promotion ---------------------------------------------------------------------------------------


def record(days: float) -> prom.Record:
    made = datetime(2026, 11, 22, tzinfo=UTC) - timedelta(days=days)
    return prom.Record("R1", "shop", "staging", "stage1", made.isoformat(), "magento", "run")


class TestPromotion:
    NOW = datetime(2026, 11, 22, tzinfo=UTC)

    def test_refusals(self) -> None:
        week = prom.parse_age("7d")
        none = prom.Production(None, None, None)
        assert "no promotable record" in (prom.refusal(None, none, week, self.NOW) or "")
        assert "stale" in (prom.refusal(record(8), none, week, self.NOW) or "")
        assert prom.refusal(record(1), none, week, self.NOW) is None
        newer = prom.Production("P", self.NOW - timedelta(hours=1), None)
        assert "not newer than production's release P" in (
            prom.refusal(record(1), newer, week, self.NOW) or ""
        )
        same = prom.Production("P", None, "R1")
        assert "already runs" in (prom.refusal(record(1), same, week, self.NOW) or "")

    def test_ages(self) -> None:
        assert prom.parse_age("12h") == timedelta(hours=12)
        assert prom.parse_age(90) == timedelta(seconds=90)
        with pytest.raises(ValueError, match="invalid age"):
            prom.parse_age("soon")

    def test_record_round_trip_and_tamper_check(self, tmp_path: Path) -> None:
        from maintkit.storage.local import LocalTarget

        target = LocalTarget("local", tmp_path)
        rec = record(0)
        prom.write_record([target], rec, {"composer.lock": b"lock"})
        found = prom.latest_record(target, "shop", "staging")
        assert found is not None and found.files["composer.lock"]["size"] == 4
        assert prom.read_file(target, found, "composer.lock") == b"lock"
        (tmp_path / "shop/staging/promotable/R1/composer.lock").write_bytes(b"LOCK")
        with pytest.raises(Exception, match="does not match its SHA-256"):
            prom.read_file(target, found, "composer.lock")


# -- the manual steps of a rollback that failed --------------------------------------------------------


def test_manual_steps_name_what_failed_what_is_left_and_the_playbooks_instructions() -> None:
    steps = [
        Step(n, "shell", {"cmd": "true"}, Position("p"))
        for n in ("switch back", "restore {{ snap }}", "maint off")
    ]
    book = Playbook(name="p", path="p.yml", rollback=steps)
    variables = {"snap": "S1", "manual_steps": ["restore {{ snap }} by hand", "{{ undefined_thing }}"]}
    state = HostState(Host("h"), None, variables, Redactor(), "run", lambda *a, **k: None)  # type: ignore[arg-type]
    outcome = HostOutcome("h", failed_step="setup:upgrade")
    outcome.steps = [
        StepOutcome("switch back", "shell", "rollback", "changed", ActionResult()),
        StepOutcome("restore S1", "shell", "rollback", "failed", ActionResult(failed=True, msg="gone")),
    ]
    event = manual_steps(book, state, outcome)
    assert event["rollback_failed_step"] == "restore S1" and event["rollback_error"] == "gone"
    assert event["rolled_back"] == ["switch back"]
    assert event["not_done"] == ["restore S1", "maint off"]
    assert event["instructions"] == ["restore S1 by hand", "{{ undefined_thing }} (could not be rendered)"]


def test_fixture_console_is_valid_php() -> None:
    console = Path(__file__).parents[1] / "fixtures/shop/project/bin/magento"
    if subprocess.run(["which", "php"], capture_output=True).returncode != 0:
        pytest.skip("php is missing")
    assert subprocess.run(["php", "-l", str(console)], capture_output=True).returncode == 0


class TestWpParsing:
    """wp-cli's real output shapes (wp-cli/extension-command): JSON rows, trailing text, nothing."""

    def test_json_with_trailing_text_and_empty_output(self) -> None:
        from maintkit.actions.wp import _json

        rows = '[{"name":"akismet","old_version":"4.1","new_version":"4.2","status":"Updated"}]\nSuccess: x'
        assert _json(rows) == [
            {"name": "akismet", "old_version": "4.1", "new_version": "4.2", "status": "Updated"}
        ]
        assert _json("") is None  # --format=json with nothing to update prints nothing

    def test_versions_leave_must_use_plugins_apart_and_apply_only_differences(self) -> None:
        from maintkit.actions.wp import apply_commands, differences, parse_versions

        have = parse_versions(
            "6.4.1\n",
            '[{"name":"a","version":"1.0","status":"active"},{"name":"mu","version":"2","status":"must-use"}]',
            '[{"name":"t","version":"1.0","status":"active"}]',
        )
        assert have == {"core": "6.4.1", "plugins": {"a": "1.0"}, "themes": {"t": "1.0"}, "unmanaged": ["mu"]}
        wanted = {"core": "6.4.1", "plugins": {"a": "1.1"}, "themes": {"t": "1.0"}}
        p = WpParams(command="apply-versions", root="/w", versions=wanted)
        assert [words(c)[1:5] for c in apply_commands(p, have)] == [
            ["plugin", "install", "a", "--version=1.1"],
            ["core", "update-db", "--path=/w"],
        ]
        assert differences(wanted, have) == ["plugin a: 1.0 (wanted 1.1)"]


# -- the release history never loses the way back -----------------------------------------------------


def history_of(*entries: tuple[str, str], current: str | None = None, **origins: str) -> History:
    releases = [
        Release(i, f"2026-01-0{n + 1}T00:00:00+00:00", state=state, from_release=origins.get(f"r_{i}"))
        for n, (i, state) in enumerate(entries)
    ]
    return History(releases, current)


class TestRollbackRules:
    def test_nowhere_to_go_back_to_raises_and_marks_nothing(self) -> None:
        history = history_of(("A", "current"), current="A")
        with pytest.raises(Exception, match="no release to go back to from A"):
            history.plan_rollback("A", None, None)
        assert history.get("A").state == "current"  # type: ignore[union-attr]

    def test_rolling_back_to_the_release_already_current_changes_nothing(self) -> None:
        history = history_of(("A", "current"), ("B", "failed"), current="A", r_B="A")
        plan = history.plan_rollback("A", None, "A")
        assert (plan.target, plan.switch, plan.mark_failed) == ("A", False, False)

    def test_the_live_release_is_marked_failed_only_when_switched_away_from(self) -> None:
        history = history_of(("A", "old"), ("B", "current"), current="B", r_B="A")
        plan = history.plan_rollback("B", None, None)
        assert (plan.abandoned, plan.target, plan.switch, plan.mark_failed) == ("B", "A", True, True)

    def test_a_release_that_never_went_live_is_abandoned_without_a_switch(self) -> None:
        history = history_of(("A", "current"), ("B", "prepared"), current="A", r_B="A")
        plan = history.plan_rollback("A", "B", None)
        assert (plan.target, plan.switch, plan.mark_failed) == ("A", False, True)

    def test_a_history_calling_the_live_release_failed_is_repaired_so_the_next_update_can_go_back(
        self,
    ) -> None:
        # what maintkit's old `rollback` left: the live release A marked failed
        history = history_of(("A", "failed"), ("B", "failed"), current="A", r_B="A")
        history.reconcile("A")
        assert history.get("A").state == "current"  # type: ignore[union-attr]
        history.releases.append(Release("C", "2026-01-09T00:00:00+00:00", from_release="A"))
        assert history.rollback_target("C") == "A"


class TestRollbackOnAFolder:
    def test_the_issue_sequence_keeps_a_way_back_for_the_next_update(self, tmp_path: Path) -> None:
        """Update, its rollback switches back, the manual `rollback` is run (with and without --to),
        then a second update fails: its rollback still switches back."""
        root, ctx = site(tmp_path), local_ctx(tmp_path)
        first = "20200101T000000Z"
        lists = {"shared": ["app/etc/env.php"], "copy": ["vendor"], "clear": []}
        new = release(ctx, op="prepare", root=str(root), **lists).data["id"]
        release(ctx, op="switch", root=str(root), release=new)
        back = release(ctx, op="rollback", root=str(root), release=new)
        assert back.changed and os.readlink(root / "current") == f"releases/{first}"
        # the printed manual command: `maintkit rollback --to FIRST` → op rollback to FIRST
        again = release(ctx, op="rollback", root=str(root), to=first)
        assert not again.failed and not again.changed and again.data["failed"] is None
        # the old printed command (no --to): refused, and the live release stays healthy
        with pytest.raises(Exception, match="no release to go back to"):
            release(ctx, op="rollback", root=str(root))
        history = History.parse((root / ".maintkit/releases.json").read_bytes())
        assert history.get(first).state == "current" and history.get(new).state == "failed"  # type: ignore[union-attr]
        second = release(ctx, op="prepare", root=str(root), **lists).data["id"]
        release(ctx, op="switch", root=str(root), release=second)
        undone = release(ctx, op="rollback", root=str(root), release=second)
        assert undone.changed and os.readlink(root / "current") == f"releases/{first}"

    def test_a_broken_history_on_the_host_is_repaired_when_read(self, tmp_path: Path) -> None:
        root, ctx = site(tmp_path), local_ctx(tmp_path)
        (root / ".maintkit").mkdir()
        broken = History([Release("20200101T000000Z", "2020-01-01T00:00:00+00:00", state="failed")])
        (root / ".maintkit/releases.json").write_bytes(broken.to_bytes())
        lists = {"shared": ["app/etc/env.php"], "copy": ["vendor"], "clear": []}
        new = release(ctx, op="prepare", root=str(root), **lists).data["id"]
        release(ctx, op="switch", root=str(root), release=new)
        undone = release(ctx, op="rollback", root=str(root), release=new)
        assert undone.changed and os.readlink(root / "current") == "releases/20200101T000000Z"


# -- every printed manual step is a command the CLI accepts ---------------------------------------------


def _parse_cli(args: list[str]) -> Any:
    """Parse ``maintkit ARGS`` with the real Click commands (nothing runs); return the leaf context."""
    import click

    from maintkit.cli import cli

    command: click.Command = cli
    ctx = cli.make_context("maintkit", list(args))
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


def _results(**fields: Any) -> dict[str, Any]:
    return ActionResult(data=fields).as_vars()


NOT_RUN = ActionResult(skipped=True, msg="not run").as_vars()


def _scenarios(name: str) -> list[dict[str, Any]]:
    """The states a failed rollback of the shipped playbook ``name`` can leave, as its variables."""
    base = {
        "maintkit_env": "production",
        "inventory_hostname": "prod1",
        "release_root": "/srv/shop root",
        "wp_root": "/srv/wp root",
        "ps_root": "/srv/ps",
        "run_id": "20261122T013742Z-0d31b3",
    }
    release_ = _results(id="20261122T020000Z", previous="20261101T000000Z", path="/srv/x")
    pre = _results(snapshot_id="20261122T013743Z")
    out = []
    if name == "rollback":
        for was_on in (True, False):
            for db in ("20261122T013743Z", None):
                out.append(
                    {
                        **base,
                        "with_database": db,
                        "rollback_to": "20261101T000000Z",
                        "maint": _results(was_on=was_on),
                        "switched": _results(current="20261101T000000Z"),
                    }
                )
        return out
    for was_on in (True, False):
        for upgraded in (True, False):
            out.append(
                {
                    **base,
                    "release": release_,
                    "pre": pre,
                    "upgrade": _results() if upgraded else NOT_RUN,
                    "maint": _results(was_on=was_on),
                    "db_restored": NOT_RUN,
                }
            )
    restored = {**out[-1], "db_restored": ActionResult(changed=True).as_vars()}  # a later step failed
    out.append(restored)
    out.append(
        {
            **base,
            "release": NOT_RUN,
            "pre": NOT_RUN,
            "upgrade": NOT_RUN,
            "maint": NOT_RUN,
            "db_restored": NOT_RUN,
        }
    )
    return out


@pytest.mark.parametrize(
    "name",
    [
        "update-magento",
        "promote",
        "rollback",
        "update-wordpress",
        "promote-wordpress",
        "update-prestashop",
        "promote-prestashop",
    ],
)
def test_every_printed_manual_step_parses_through_the_real_cli(name: str) -> None:
    from maintkit.config.playbook import load_playbook
    from tests.manual_steps import printed_commands

    folder = Path(__file__).resolve().parents[2] / "playbooks"
    book = load_playbook(folder / f"{name}.yml")
    seen = 0
    for variables in _scenarios(name):
        variables["manual_steps"] = book.vars["manual_steps"]
        state = HostState(Host("prod1"), None, variables, Redactor(), "run", lambda *a, **k: None)  # type: ignore[arg-type]
        outcome = HostOutcome("prod1", failed_step="x")
        instructions = manual_steps(book, state, outcome)["instructions"]
        assert instructions and not any("could not be rendered" in i for i in instructions), instructions
        for text in instructions:
            for args in printed_commands(text):
                ctx = _parse_cli(args)  # raises on an unknown command or option
                seen += 1
                if ctx.command.name == "run":  # the playbook named must ship with maintkit
                    assert (folder / f"{ctx.params['playbook']}.yml").is_file(), args
                    given = {v.split("=", 1)[0] for v in ctx.params["var"]}
                    if ctx.params["playbook"] == "restore-site":
                        assert {"snapshot", "cms", "site_root"} <= given, args
    assert seen, f"{name}: no maintkit command printed in any scenario"


# -- preflight -------------------------------------------------------------------------------------------


def test_preflight_names_the_exact_grant_with_the_wildcards_escaped() -> None:
    from maintkit.actions.preflight import probe_sql, staging_grant

    assert (
        staging_grant("shop_db_mkrestore", "shop@localhost")
        == "GRANT ALL PRIVILEGES ON `shop\\_db\\_mkrestore`.* TO 'shop'@'localhost';"
    )
    assert staging_grant("a`b_mkrestore", "o'neil@%").endswith("`a``b\\_mkrestore`.* TO 'o''neil'@'%';")
    text = probe_sql("x_mkrestore")
    assert text.index("CREATE DATABASE `x_mkrestore`") < text.index("DROP DATABASE `x_mkrestore`")
    assert "mk_preflight" in text and text.rstrip().endswith("SELECT '#done', 1;")


def test_preflight_reports_missing_shared_paths_and_an_unwritable_parent(tmp_path: Path) -> None:
    from maintkit.actions.preflight import PreflightParams

    root, ctx = site(tmp_path), local_ctx(tmp_path)
    action = get_action("preflight")
    assert action is not None
    params = PreflightParams(root=str(root), shared=["app/etc/env.php", "var/log"], files_root=str(root))
    result = action.run(params, ctx)
    assert result.failed and result.data["problems"] == [
        f"shared path missing: {root}/shared/var/log (create it)"
    ]
    ok = action.run(PreflightParams(root=str(root), shared=["app/etc/env.php"]), ctx)
    assert not ok.failed, ok.msg


def test_the_check_preview_works_in_a_dot_folder_beside_the_releases_and_removes_it(tmp_path: Path) -> None:
    from maintkit.actions.preview import Preview, PreviewParams
    from maintkit.updates.releases import parse_state, preview_folder, remove_preview_command, state_command

    folder = preview_folder("20261122T013742Z-0d31b3")
    assert folder == ".maintkit-check-20261122T013742Z-0d31b3"
    root = site(tmp_path)
    (root / "releases" / folder).mkdir()  # a preview copy in progress
    listed = local_ctx(tmp_path).run(state_command(str(root)))
    assert parse_state(listed.stdout).folders == ["20200101T000000Z"]  # invisible to releases/cleanup
    subprocess.run(["bash", "-c", remove_preview_command(str(root), folder)], check=True)
    assert not (root / "releases" / folder).exists()
    remove = remove_preview_command("/srv/shop root", folder)
    assert "'/srv/shop root'" in remove and ".maintkit-check-" in remove and "-mmin +1440" in remove
    with pytest.raises(Exception, match="invalid preview folder"):
        remove_preview_command("/srv", "../x")
    ctx = StepContext(Host("h"), None, {"check_probe": False}, Redactor(), "run-1", check=True)  # type: ignore[arg-type]
    plan = Preview().plan(PreviewParams(root="/srv/shop", packages="acme/a:1.1.*"), ctx)
    assert plan[0].count("/releases/") and ".maintkit-check-run-1" in plan[0]
    assert "composer update" in plan[1] and "acme/a:1.1.*" in plan[1]
    assert "setup:db:status" in plan[2] and "app:config:status" in plan[3] and "rm -rf" in plan[4]
