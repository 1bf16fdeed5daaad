"""Which lock folders a run takes (one per environment and site), and how the lock treats them.

The EnvironmentLock tests run the real lock scripts through the local transport in temp folders:
each LocalTransport stands for one inventory entry, several of them for one server reached under
several names.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from maintkit.engine.lock import EnvironmentLock, LockTarget
from maintkit.engine.lockplan import (
    break_lock_command,
    check_lock_settings,
    lock_path,
    lock_targets,
    path_part,
)
from maintkit.model.hosts import Host
from maintkit.model.problems import LockHeld
from maintkit.secrets import Redactor
from maintkit.transport.local import LocalTransport


def test_the_lock_folder_is_lock_dir_then_environment_then_site():
    assert lock_path("~/.maintkit/lock", "staging", "shop") == "~/.maintkit/lock/staging/shop"
    assert lock_path("/var/lock/mk/", "production", "shop") == "/var/lock/mk/production/shop"


def test_names_cannot_climb_out_of_the_lock_folder_or_share_one_by_accident():
    assert path_part("..") == "%2E%2E" and path_part(".") == "%2E"
    assert path_part("clients/acme") == "clients%2Facme"
    assert path_part("clients%2Facme") != path_part("clients/acme")
    assert path_part("my shop") == "my%20shop"
    assert path_part("shop-a.example_1") == "shop-a.example_1"  # ordinary names stay readable
    with pytest.raises(ValueError):
        path_part("")


def host(name: str, address: str = "web1", **fields: Any) -> Host:
    return Host(name, address=address, user="deploy", **fields)


def variables_of(hosts: list[Host], **extra: Any) -> dict[str, dict[str, Any]]:
    return {
        h.name: {"lock_dir": "~/.maintkit/lock", "lock_ttl": 60, "inventory_hostname": h.name, **extra}
        for h in hosts
    }


def targets_for(hosts: list[Host], env: str = "staging", **extra: Any) -> list[LockTarget]:
    transports: Any = {h.name: LocalTransport(h.name) for h in hosts}
    return lock_targets(hosts, variables_of(hosts, **extra), env, transports, Redactor())


def test_two_sites_on_one_server_user_get_two_lock_folders():
    found = targets_for([host("shop-a"), host("shop-b")])
    assert [t.lock_dir for t in found] == [
        "~/.maintkit/lock/staging/shop-a",
        "~/.maintkit/lock/staging/shop-b",
    ]
    assert [t.legacy_dir for t in found] == ["~/.maintkit/lock", "~/.maintkit/lock"]
    assert found[0].scope == "environment 'staging', site 'shop-a'"


def test_entries_of_one_site_on_one_server_share_one_lock_and_two_servers_get_one_each():
    same = targets_for([host("web-a"), host("web-b")], site="shop")
    assert [(t.host, t.lock_dir) for t in same] == [("web-a", "~/.maintkit/lock/staging/shop")]
    spread = targets_for([host("web-a", "server1"), host("web-b", "server2")], site="shop")
    assert [t.host for t in spread] == ["web-a", "web-b"]


def test_two_environments_of_one_site_use_two_folders():
    staging = targets_for([host("shop")], "staging")[0].lock_dir
    production = targets_for([host("shop")], "production")[0].lock_dir
    assert staging != production


def test_the_site_variable_may_be_a_template():
    found = targets_for([host("web-a")], site="{{ client }}-shop", client="acme")
    assert found[0].lock_dir == "~/.maintkit/lock/staging/acme-shop"


def test_lock_settings_are_checked_before_anything_connects():
    good = {"lock_dir": "~/.maintkit/lock", "lock_ttl": "3600"}
    bad = {
        "empty": {"lock_dir": "", "lock_ttl": 60},
        "blank": {"lock_dir": "  ", "lock_ttl": 60},
        "a list": {"lock_dir": ["x"], "lock_ttl": 60},
        "no number": {"lock_dir": "/l", "lock_ttl": "soon"},
        "negative": {"lock_dir": "/l", "lock_ttl": -1},
    }
    pairs = [("ok", good), *bad.items()]
    problems = check_lock_settings(pairs, "inv.yml", Redactor())
    assert [p.path for p in problems] == [f"{name}: lock" for name in bad]
    assert "lock_dir must be a folder path" in problems[0].message
    assert "lock_ttl must be a number of seconds" in problems[3].message


def test_the_break_lock_command_repeats_the_command_line_as_typed():
    typed = ["/usr/local/bin/maintkit", "run", "nightly backup.yml", "--env", "production"]
    assert break_lock_command(typed) == (
        "/usr/local/bin/maintkit run 'nightly backup.yml' --env production --break-lock"
    )
    assert break_lock_command([*typed, "--break-lock"]) == break_lock_command(typed)
    module = ["/x/site-packages/maintkit/__main__.py", "run", "b.yml"]
    assert break_lock_command(module) == f"{sys.executable} -m maintkit run b.yml --break-lock"
    assert break_lock_command(None) is None


# -- the lock on the hosts ------------------------------------------------------------------------


def target(path: Path, name: str = "h", ttl: float = 3600.0, legacy: Path | None = None) -> LockTarget:
    return LockTarget(name, LocalTransport(name), str(path), ttl, legacy_dir=str(legacy) if legacy else None)


def lock(targets: list[LockTarget], run_id: str = "run-1", **options: Any) -> EnvironmentLock:
    return EnvironmentLock(targets, run_id=run_id, env="staging", playbook="p", parallel=10, **options)


def test_one_folder_reached_through_two_entries_is_taken_once_and_released(tmp_path):
    folder = tmp_path / "lock" / "staging" / "shop"
    events: list[str] = []
    both = lock(
        [target(folder, "via-ip"), target(folder, "via-name")],
        emit=lambda event, **fields: events.append(event),
    )
    both.acquire()
    assert json.loads((folder / "holder.json").read_text())["run_id"] == "run-1"
    assert sorted(events) == ["lock_acquired", "lock_shared"]
    assert len(both.held) == 1
    both.release()
    assert not folder.exists()


def test_a_folder_made_a_moment_ago_is_reported_with_its_holder_not_as_empty(tmp_path):
    folder = tmp_path / "lock" / "staging" / "shop"
    folder.mkdir(parents=True)

    def record_later() -> None:  # another run, between its mkdir and its holder record
        time.sleep(0.5)
        (folder / "holder.json").write_text(json.dumps({"run_id": "other-run", "started_epoch": time.time()}))

    writer = threading.Thread(target=record_later)
    writer.start()
    with pytest.raises(LockHeld, match="by run other-run") as refused:
        lock([target(folder)]).acquire()
    writer.join()
    assert "Wait for that run to end" in str(refused.value)


def test_a_folder_without_holder_names_its_path_age_and_what_to_do(tmp_path):
    folder = tmp_path / "lock" / "staging" / "shop"
    folder.mkdir(parents=True)
    with pytest.raises(LockHeld) as refused:
        lock([target(folder, ttl=60)], break_command="maintkit run b.yml --break-lock").acquire()
    message = str(refused.value)
    assert f"lock folder {folder} exists but holds no holder.json" in message
    assert "s old" in message and "in 5" in message  # breakable in about 58 s
    assert f"rm -rf -- {folder}" in message
    assert folder.exists()


def test_break_lock_takes_a_stale_folder_without_holder(tmp_path):
    import os

    folder = tmp_path / "lock" / "staging" / "shop"
    folder.mkdir(parents=True)
    os.utime(folder, (time.time() - 120, time.time() - 120))
    taken = lock([target(folder, ttl=60)], break_lock=True)
    taken.acquire()
    assert json.loads((folder / "holder.json").read_text())["run_id"] == "run-1"
    taken.release()


def stale_legacy(base: Path) -> dict[str, Any]:
    holder = {"run_id": "old-run", "control_host": "old-box", "pid": 1, "started_epoch": time.time() - 7200}
    base.mkdir(parents=True, exist_ok=True)
    (base / "holder.json").write_text(json.dumps(holder))
    return holder


def test_an_older_maintkits_lock_blocks_and_the_folder_just_taken_is_given_back(tmp_path):
    base = tmp_path / "lock"
    stale_legacy(base)
    folder = base / "staging" / "shop"
    with pytest.raises(LockHeld, match=r"older maintkit version.*by run old-run"):
        lock([target(folder, legacy=base)]).acquire()
    assert not folder.exists()
    assert (base / "holder.json").exists()


def test_breaking_an_older_maintkits_lock_keeps_the_other_environments_locks(tmp_path):
    base = tmp_path / "lock"
    stale_legacy(base)
    production = base / "production" / "shop"
    production.mkdir(parents=True)
    (production / "holder.json").write_text(json.dumps({"run_id": "prod-run", "started_epoch": time.time()}))
    folder = base / "staging" / "shop"
    taken = lock([target(folder, ttl=60, legacy=base)], break_lock=True)
    taken.acquire()
    assert not (base / "holder.json").exists()
    assert (production / "holder.json").exists()  # production's own lock is untouched
    taken.release()
    assert not folder.exists() and production.exists()


def test_break_lock_leaves_a_lock_that_changed_hands_since_it_was_judged(tmp_path, monkeypatch):
    # --break-lock judged the old holder stale; a new run took the folder meanwhile: it stays.
    folder = tmp_path / "lock" / "staging" / "shop"
    folder.mkdir(parents=True)
    (folder / "holder.json").write_text(json.dumps({"run_id": "old", "started_epoch": 0, "pid": 1}))
    breaker = lock([target(folder, ttl=60)], break_lock=True)
    real_break = breaker._break

    def taken_meanwhile(t: LockTarget, found: Any) -> None:
        (folder / "holder.json").write_text(json.dumps({"run_id": "new", "started_epoch": time.time()}))
        real_break(t, found)

    monkeypatch.setattr(breaker, "_break", taken_meanwhile)
    with pytest.raises(LockHeld, match="by run new"):
        breaker.acquire()
    assert json.loads((folder / "holder.json").read_text())["run_id"] == "new"


def test_every_command_that_takes_the_lock_accepts_break_lock():
    # the printed retry repeats the command line with --break-lock: each of them must accept it
    from click.testing import CliRunner

    from maintkit.cli import cli

    for command in ("run", "restore", "drill", "rollback"):
        shown = CliRunner().invoke(cli, [command, "--help"])
        assert shown.exit_code == 0 and "--break-lock" in shown.output, command
