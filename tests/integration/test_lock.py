"""The lock belongs to an environment and its sites, not to a server login (real sshd, the real CLI).

Every "server" here is the ``stage1`` sshd and its one Unix user: several inventory entries (site
instances) on it is the shared-hosting and agency layout. Locks live in ``~/.maintkit/lock/ENV/SITE``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import events, run_cli, start_cli, wait_for, write_playbook
from tests.sshd import SSHHost

pytestmark = pytest.mark.integration


@pytest.fixture
def server(ssh_hosts: dict[str, SSHHost], clean_homes: Any) -> SSHHost:
    """The one server every site of these tests lives on (stage1's sshd and user), emptied."""
    return ssh_hosts["stage1"]


@pytest.fixture
def gate() -> Iterator[Path]:
    """A file the test creates to let a holding run finish, in a folder the test users can read."""
    folder = Path(tempfile.mkdtemp(prefix="maintkit-gate-"))
    folder.chmod(0o755)
    yield folder / "gate"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def known_hosts(tmp_path: Path, server: SSHHost) -> Path:
    """A known_hosts file trusting the server under two spellings: 127.0.0.1 and localhost."""
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line + f"[localhost]:{server.port} {server.host_public_key_line}\n")
    return path


def site(server: SSHHost, name: str, address: str | None = None) -> dict[str, Any]:
    """An inventory entry for site NAME on the server, its root a folder of the user's home."""
    return {
        "ansible_host": address or server.address,
        "ansible_port": server.port,
        "ansible_user": server.user,
        "ansible_ssh_private_key_file": str(server.key_file),
        "site_root": str(server.home / name),
    }


def write_inventory(folder: Path, env: str, known_hosts: Path, hosts: dict[str, Any]) -> Path:
    """``ENV.yml`` in ``folder``: the environment is named after the file, as with ``--env``."""
    path = folder / f"{env}.yml"
    data = {"all": {"vars": {"known_hosts": str(known_hosts)}, "hosts": hosts}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def lock_folder(server: SSHHost, env: str, site_name: str) -> Path:
    return server.home / ".maintkit" / "lock" / env / site_name


def as_user(server: SSHHost) -> None:
    """Give the user what the test made in its home as root (a lock folder another run left)."""
    subprocess.run(
        ["chown", "-R", f"{server.user}:{server.user}", str(server.home / ".maintkit")], check=True
    )


MARK_SITE = {"name": "mark", "shell": "mkdir -p {{ site_root }} && echo {{ run_id }} > {{ site_root }}/ran"}


def gated_book(gate: Path) -> dict[str, Any]:
    """Mark each site, then hold the lock until ``gate`` exists."""
    wait = {"name": "hold", "shell": f"while [ ! -e {gate} ]; do sleep 0.05; done", "timeout": 60}
    return {"name": "holder", "steps": [MARK_SITE, wait]}


def run(work: Path, inventory: Path, book: dict[str, Any], *args: str, journal: str = "journal"):
    path = write_playbook(work, book, name=book["name"])
    return run_cli("run", path, "-i", inventory, "--journal-dir", work / journal, *args, cwd=work)


@pytest.mark.parametrize("spelling", ["same address", "127.0.0.1 and localhost"])
def test_two_sites_of_one_environment_on_one_server_user_run_together(
    tmp_path, server, known_hosts, spelling
):
    # The self-lockout: with the server spelled two ways the run took ~/.maintkit/lock twice and
    # exited 4, "locked by run <its own id>". Each site now has its own lock folder.
    other = "localhost" if spelling != "same address" else None
    inventory = write_inventory(
        tmp_path,
        "staging",
        known_hosts,
        {"shop-a": site(server, "shop-a"), "shop-b": site(server, "shop-b", other)},
    )
    result = run(tmp_path, inventory, {"name": "both", "steps": [MARK_SITE]})
    assert result.returncode == 0, result.stdout + result.stderr
    journal = events(tmp_path / "journal")
    run_id = journal[0]["run_id"]
    for name in ("shop-a", "shop-b"):
        assert (server.home / name / "ran").read_text().strip() == run_id
    taken = sorted(e["lock_dir"] for e in journal if e["event"] == "lock_acquired")
    assert taken == ["~/.maintkit/lock/staging/shop-a", "~/.maintkit/lock/staging/shop-b"]
    assert not any(lock_folder(server, "staging", n).exists() for n in ("shop-a", "shop-b"))


def test_two_entries_of_one_site_spelled_differently_share_the_run_lock(tmp_path, server, known_hosts):
    # Two entries of one site reaching one server by two names: one folder, taken once by this run.
    entry = site(server, "shop")
    hosts = {
        "web-a": {**entry, "site": "shop"},
        "web-b": {**entry, "site": "shop", "ansible_host": "localhost"},
    }
    inventory = write_inventory(tmp_path, "staging", known_hosts, hosts)
    result = run(tmp_path, inventory, {"name": "one-site", "steps": [MARK_SITE]})
    assert result.returncode == 0, result.stdout + result.stderr
    journal = events(tmp_path / "journal")
    kinds = sorted(e["event"] for e in journal if e["event"].startswith("lock_"))
    assert kinds == ["lock_acquired", "lock_released", "lock_shared"]
    assert not lock_folder(server, "staging", "shop").exists()


def test_staging_and_production_on_one_server_user_do_not_block_each_other(
    tmp_path, server, known_hosts, gate
):
    staging = write_inventory(
        tmp_path, "staging", known_hosts, {"shop-staging": {**site(server, "stg"), "site": "shop"}}
    )
    production = write_inventory(
        tmp_path, "production", known_hosts, {"shop-prod": {**site(server, "prd"), "site": "shop"}}
    )
    held = write_playbook(tmp_path, gated_book(gate), name="holder")
    first = start_cli("run", held, "-i", staging, "--journal-dir", tmp_path / "journal-staging", cwd=tmp_path)
    try:
        wait_for(
            lambda: (lock_folder(server, "staging", "shop") / "holder.json").exists(), what="staging's lock"
        )
        wait_for(lambda: (server.home / "stg" / "ran").exists(), what="staging's first step")
        second = run(
            tmp_path, production, {"name": "prod", "steps": [MARK_SITE]}, journal="journal-production"
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert (server.home / "prd" / "ran").exists()
        assert first.poll() is None, "staging must still be running, holding its lock"
        assert (lock_folder(server, "staging", "shop") / "holder.json").exists()
        gate.touch()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not lock_folder(server, "staging", "shop").exists()


def test_the_same_environment_twice_exits_4_naming_the_holder_run(tmp_path, server, known_hosts, gate):
    inventory = write_inventory(tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a")})
    held = write_playbook(tmp_path, gated_book(gate), name="holder")
    first = start_cli("run", held, "-i", inventory, "--journal-dir", tmp_path / "journal-first", cwd=tmp_path)
    try:
        holder_file = lock_folder(server, "staging", "shop-a") / "holder.json"
        wait_for(holder_file.exists, what="the first run's lock")
        first_id = json.loads(holder_file.read_text())["run_id"]
        second = run(tmp_path, inventory, {"name": "second", "steps": [{"shell": "touch second-ran"}]})
        assert second.returncode == 4, second.stdout + second.stderr
        assert f"by run {first_id} of playbook holder" in second.stdout
        assert (
            "environment 'staging', site 'shop-a' is locked (~/.maintkit/lock/staging/shop-a)"
            in second.stdout
        )
        assert not (server.home / "second-ran").exists()
        gate.touch()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert events(tmp_path / "journal-first")[0]["run_id"] == first_id


def printed_command(stdout: str, after: str) -> str:
    """The command a message prints after ``after``, up to the end of its line."""
    found = re.search(re.escape(after) + r" (.+)$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def test_a_lock_folder_without_holder_says_so_and_its_printed_commands_work(tmp_path, server, known_hosts):
    inventory = write_inventory(tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a")})
    stray = lock_folder(server, "staging", "shop-a")
    stray.mkdir(parents=True)
    as_user(server)
    book = {"name": "after-crash", "steps": [MARK_SITE]}

    young = run(tmp_path, inventory, book)
    assert young.returncode == 4, young.stdout + young.stderr
    message = events(tmp_path / "journal")[-1]["error"]
    assert message in young.stdout  # printed whole, on one line
    assert f"lock folder {'~/.maintkit/lock/staging/shop-a'} exists but holds no holder.json" in message
    assert re.search(r"it is \d+ s old", message)
    assert "--break-lock takes it once it is older than lock_ttl (21600 s)" in message
    assert not (server.home / "shop-a" / "ran").exists()

    # "remove it sooner on shop-a: rm -rf -- ...", run literally in the server user's shell
    removal = printed_command(young.stdout, "remove it sooner on shop-a:")
    ssh = [
        "ssh",
        "-i",
        str(server.key_file),
        "-p",
        str(server.port),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
    ]
    subprocess.run([*ssh, "-o", "BatchMode=yes", f"{server.user}@{server.address}", removal], check=True)
    assert not stray.exists()

    # older than lock_ttl: the printed --break-lock command takes it, as printed
    stray.mkdir()
    as_user(server)
    past = time.time() - 100_000
    os.utime(stray, (past, past))
    stale = run(tmp_path, inventory, book, journal="journal-stale")
    assert stale.returncode == 4, stale.stdout + stale.stderr
    age = re.search(r"it is (\d+) s old", stale.stdout)
    assert age and 100_000 <= int(age.group(1)) < 100_060, stale.stdout
    command = printed_command(stale.stdout, "if no maintkit run is working on it, take it with:")
    assert command.endswith(" --break-lock")
    taken = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert (server.home / "shop-a" / "ran").exists()
    broken = [e for e in events(tmp_path / "journal-stale") if e["event"] == "lock_broken"]
    assert broken and broken[0]["lock_dir"] == "~/.maintkit/lock/staging/shop-a"
    assert not stray.exists()


def test_a_lock_held_by_an_older_maintkit_is_respected_and_broken_only_when_stale(
    tmp_path, server, known_hosts
):
    # An older maintkit took ~/.maintkit/lock itself (holder.json in it) for every environment.
    inventory = write_inventory(tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a")})
    legacy = server.home / ".maintkit" / "lock"
    legacy.mkdir(parents=True)
    holder = {
        "run_id": "old-version-run",
        "playbook": "nightly-backup",
        "user": "cron",
        "control_host": "old-box",
        "pid": 4242,
        "started": "2026-01-01T00:00:00Z",
        "started_epoch": time.time() - 60,
    }
    (legacy / "holder.json").write_text(json.dumps(holder))
    as_user(server)
    book = {"name": "new", "steps": [MARK_SITE]}

    refused = run(tmp_path, inventory, book, "--break-lock")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "is locked by an older maintkit version: its lock ~/.maintkit/lock/" in refused.stdout
    assert "by run old-version-run of playbook nightly-backup" in refused.stdout
    assert "--break-lock refused" in refused.stdout
    assert not (server.home / "shop-a" / "ran").exists()
    assert not lock_folder(server, "staging", "shop-a").exists()  # given back

    holder["started_epoch"] = time.time() - 100_000
    (legacy / "holder.json").write_text(json.dumps(holder))
    taken = run(tmp_path, inventory, book, "--break-lock", journal="journal-broken")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert (server.home / "shop-a" / "ran").exists()
    assert not (legacy / "holder.json").exists()
    assert any(e["event"] == "lock_broken" for e in events(tmp_path / "journal-broken"))


def test_an_empty_lock_dir_is_refused_before_any_connection(tmp_path, server, known_hosts):
    inventory = write_inventory(tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a")})
    result = run(tmp_path, inventory, {"name": "x", "steps": [MARK_SITE]}, "--var", "lock_dir=")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--var lock_dir: 'lock_dir' must be a non-empty path" in result.stderr
    assert not (server.home / ".maintkit").exists()


def test_one_site_held_elsewhere_means_no_site_is_locked_or_run(tmp_path, server, known_hosts):
    inventory = write_inventory(
        tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a"), "shop-b": site(server, "shop-b")}
    )
    held = lock_folder(server, "staging", "shop-b")
    held.mkdir(parents=True)
    (held / "holder.json").write_text(json.dumps({"run_id": "other-run", "started_epoch": time.time()}))
    as_user(server)
    result = run(tmp_path, inventory, {"name": "both", "steps": [MARK_SITE]})
    assert result.returncode == 4, result.stdout + result.stderr
    assert "site 'shop-b' is locked" in result.stdout and "by run other-run" in result.stdout
    assert not (server.home / "shop-a" / "ran").exists() and not (server.home / "shop-b" / "ran").exists()
    assert not lock_folder(server, "staging", "shop-a").exists()  # taken, then given back
    assert (held / "holder.json").exists()  # the other run's lock is untouched


def test_a_failing_site_releases_the_locks_of_every_site(tmp_path, server, known_hosts):
    inventory = write_inventory(
        tmp_path, "staging", known_hosts, {"shop-a": site(server, "shop-a"), "shop-b": site(server, "shop-b")}
    )
    fail_b = {"name": "fail on shop-b", "shell": "test {{ inventory_hostname }} != shop-b"}
    result = run(tmp_path, inventory, {"name": "half", "steps": [MARK_SITE, fail_b]})
    assert result.returncode == 1, result.stdout + result.stderr
    released = sorted(e["lock_dir"] for e in events(tmp_path / "journal") if e["event"] == "lock_released")
    assert released == ["~/.maintkit/lock/staging/shop-a", "~/.maintkit/lock/staging/shop-b"]
    assert not any(lock_folder(server, "staging", n).exists() for n in ("shop-a", "shop-b"))
