"""Installing the restic engine on a host, and the engine preflight, over real sshd (issue 16).

The "bare" host is a real sshd whose sessions get a PATH without restic (``SetEnv PATH=`` a folder
of links to every /usr/bin tool but restic) and that refuses TCP forwarding (``AllowTcpForwarding
no``): what a shop server without restic, hardened by its admin, looks like. What is proven: the
control node's restic is shipped into ``~/.maintkit/bin`` (file, mode, hash, it runs), a second
call transfers nothing, a copy with the wrong hash replaces nothing, ``never`` and ``package``
(not root, no sudo) refuse with the setting's name, and ``preflight`` names AllowTcpForwarding
(through the CLI, before any snapshot), while a normal host passes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.actions.base import StepContext
from maintkit.jobs.engine_host import EngineUnavailable, ensure_engine, local_engine, ship_command
from maintkit.model.hosts import Host
from maintkit.secrets import Redactor
from maintkit.transport.ssh.transport import SSHTransport
from tests.integration.helpers import events, run_cli, write_playbook
from tests.sshd import SSHHost, SSHServers, empty_home, skip_or_fail, write_known_hosts

pytestmark = pytest.mark.integration

USER_PREFIX = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk")


@pytest.fixture(scope="module")
def bare_server() -> Iterator[tuple[SSHHost, Path]]:
    """A host without restic on PATH whose sshd refuses forwarding; and a known_hosts trusting it."""
    if shutil.which("restic") is None:
        skip_or_fail("restic is needed on the control node (apt-get install restic)")
    bindir = Path(tempfile.mkdtemp(prefix="mk-norestic-"))
    bindir.chmod(0o755)
    for entry in Path("/usr/bin").iterdir():
        if entry.name != "restic":
            (bindir / entry.name).symlink_to(entry)
    options = [f"SetEnv PATH={bindir}:/usr/sbin", "AllowTcpForwarding no"]
    try:
        with SSHServers([("bare", f"{USER_PREFIX}-bare")], options=options) as servers:
            host = servers.hosts["bare"]
            known = write_known_hosts(servers.workdir / "bare_known_hosts", [host])
            yield host, known
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


@pytest.fixture
def bare(bare_server: tuple[SSHHost, Path]) -> Iterator[tuple[SSHHost, Path]]:
    empty_home(bare_server[0])
    yield bare_server
    empty_home(bare_server[0])


class Recorded(list[tuple[str, dict[str, Any]]]):
    def __call__(self, event: str, /, **fields: Any) -> None:
        self.append((event, fields))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self if event == name]


@contextmanager
def step_context(host: SSHHost, known_hosts: Path, tmp_path: Path) -> Iterator[tuple[StepContext, Recorded]]:
    """A step's context on ``host`` as the engine builds it (real SSH transport), events recorded."""
    model = Host(
        name=host.name, address=host.address, port=host.port, user=host.user,
        key_file=str(host.key_file), known_hosts=str(known_hosts),
    )  # fmt: skip
    transport = SSHTransport(model, user_known_hosts=tmp_path / "home-ssh" / "known_hosts")
    events = Recorded()
    try:
        yield StepContext(model, transport, {}, Redactor(), "run-test", timeout=300, emit=events), events
    finally:
        transport.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_host_without_restic_gets_the_control_nodes_binary(
    bare: tuple[SSHHost, Path], tmp_path: Path
) -> None:
    host, known = bare
    local = local_engine()
    assert local is not None
    with step_context(host, known, tmp_path) as (ctx, events):
        assert ctx.run("command -v restic").rc != 0, "the bare host must not see /usr/bin/restic"
        command = ensure_engine(ctx)
        shipped = host.home / ".maintkit" / "bin" / "restic"
        assert command == str(shipped)
        st = shipped.stat()
        assert stat.S_IMODE(st.st_mode) == 0o755
        assert st.st_uid == os.stat(host.home).st_uid  # the login user's, not root's
        assert sha256(shipped) == local.sha256 == sha256(Path("/usr/bin/restic").resolve())
        assert [f["bytes"] for f in events.named("engine_shipped")] == [local.size]
        ran = ctx.run(f"{command} version")
        assert ran.rc == 0 and ran.stdout.startswith("restic 0.1"), ran.stderr
        assert [p.name for p in shipped.parent.iterdir()] == ["restic"]  # no temporary file left


def test_a_second_call_reuses_the_shipped_binary_without_a_transfer(
    bare: tuple[SSHHost, Path], tmp_path: Path
) -> None:
    host, known = bare
    shipped = host.home / ".maintkit" / "bin" / "restic"
    with step_context(host, known, tmp_path) as (ctx, events):
        ensure_engine(ctx)
        before = shipped.stat()
        events.clear()
        assert ensure_engine(ctx) == str(shipped)
        after = shipped.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert events.named("engine_shipped") == [] and len(events.named("engine_found")) == 1
        # Same bytes but no longer executable: made executable again, still nothing sent.
        shipped.chmod(0o644)
        events.clear()
        assert ensure_engine(ctx) == str(shipped)
        assert [f["bytes"] for f in events.named("engine_shipped")] == [0]
        assert stat.S_IMODE(shipped.stat().st_mode) == 0o755
        assert shipped.stat().st_ino == before.st_ino


def test_a_copy_whose_hash_differs_replaces_nothing(bare: tuple[SSHHost, Path], tmp_path: Path) -> None:
    host, known = bare
    local = local_engine()
    assert local is not None
    bindir = host.home / ".maintkit" / "bin"
    with step_context(host, known, tmp_path) as (ctx, _events):
        ensure_engine(ctx)
        good = sha256(bindir / "restic")
        with local.path.open("rb") as binary:  # the hash expected is another one: as if cut or altered
            result = ctx.run(ship_command("0" * 64), stdin=binary)
    assert result.rc == 3 and "SHA-256" in result.stderr
    assert sorted(p.name for p in bindir.iterdir()) == ["restic"]  # the temporary file was removed
    assert sha256(bindir / "restic") == good


def test_never_refuses_and_names_the_setting(bare: tuple[SSHHost, Path], tmp_path: Path) -> None:
    host, known = bare
    with step_context(host, known, tmp_path) as (ctx, _events), pytest.raises(EngineUnavailable) as caught:
        ensure_engine(ctx, install="never")
    message = str(caught.value)
    assert "files_engine_install" in message and "'never'" in message and "ship" in message
    assert "install restic" in message
    assert not (host.home / ".maintkit" / "bin").exists()


def test_package_refuses_when_not_root_and_no_sudo(bare: tuple[SSHHost, Path], tmp_path: Path) -> None:
    host, known = bare
    with step_context(host, known, tmp_path) as (ctx, _events):
        if ctx.run("sudo -n true").rc == 0:
            skip_or_fail("the test user may sudo without a password here: the refusal cannot be shown")
        with pytest.raises(EngineUnavailable) as caught:
            ensure_engine(ctx, install="package")
        assert ctx.run("command -v restic").rc != 0  # nothing was installed
    message = str(caught.value)
    assert "files_engine_install is 'package'" in message and "not root" in message
    assert "apt-get install" in message and "files_engine_install: ship" in message


def inventory(path: Path, host: SSHHost, known: Path, **variables: Any) -> Path:
    entry = {
        "ansible_host": host.address, "ansible_port": host.port, "ansible_user": host.user,
        "ansible_ssh_private_key_file": str(host.key_file), **variables,
    }  # fmt: skip
    data = {"all": {"vars": {"known_hosts": str(known)}, "hosts": {host.name: entry}}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_preflight_names_allow_tcp_forwarding_before_any_snapshot(
    bare: tuple[SSHHost, Path], tmp_path: Path
) -> None:
    host, known = bare
    inv = inventory(tmp_path / "inventory.yml", host, known, files_engine="restic")
    book = write_playbook(
        tmp_path,
        {
            "name": "b",
            "steps": [{"name": "engine", "preflight": {}}, {"name": "later", "shell": "touch ~/ran"}],
        },
    )
    result = run_cli("run", book, "-i", inv, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "AllowTcpForwarding" in out and "refuses remote port forwarding" in out
    assert not (host.home / "ran").exists()  # the step after it never ran
    assert not (host.home / ".maintkit" / "bin").exists()  # preflight installs nothing


def test_preflight_passes_where_restic_is_there_and_forwarding_works(
    clean_homes: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> None:
    host = clean_homes["prod2"]
    inv = inventory(tmp_path / "inventory.yml", host, known_hosts_file, files_engine="restic")
    book = write_playbook(tmp_path, {"name": "b", "steps": [{"name": "engine", "preflight": {}}]})
    result = run_cli("run", book, "-i", inv, "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    end = next(e for e in events(tmp_path / "j") if e["event"] == "step_end")
    assert "restic 0.1" in end["msg"] and "at /usr/bin/restic" in end["msg"], end
    assert "remote port forward works" in end["msg"]


def test_an_unknown_install_mode_is_refused_with_file_and_line(
    clean_homes: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> None:
    host = clean_homes["prod2"]
    inv = inventory(tmp_path / "inventory.yml", host, known_hosts_file, files_engine_install="shipp")
    book = write_playbook(tmp_path, {"name": "b", "steps": [{"name": "t", "shell": "touch ~/ran"}]})
    result = run_cli("run", book, "-i", inv, cwd=tmp_path)
    out = result.stderr + result.stdout
    assert result.returncode == 2, out
    assert re.search(r"inventory\.yml:\d+", out) and "files_engine_install" in out, out
    assert "did you mean 'ship'" in out
    assert not (host.home / "ran").exists()


def nightly_inventory(tmp_path: Path, host: SSHHost, known: Path, engine: str, **more: Any) -> Path:
    """The host's inventory for the shipped nightly-backup playbook: files only, one local target."""
    site = host.home / "site"
    site.mkdir(exist_ok=True)
    (site / "index.php").write_text("<?php echo 'shop';\n")
    return inventory(
        tmp_path / "inventory.yml", host, known,
        storage=[{"name": "local", "type": "local", "path": str(tmp_path / "store")}],
        files={"root": str(site)}, files_engine=engine, **more,
    )  # fmt: skip


def test_nightly_backup_stops_in_preflight_when_the_engine_cannot_run(
    bare: tuple[SSHHost, Path], tmp_path: Path
) -> None:
    """The shipped playbook: a host without restic and ``files_engine_install: never`` fails in its
    preflight step with what to do, before the snapshot reads or stores anything."""
    host, known = bare
    inv = nightly_inventory(tmp_path, host, known, "restic", files_engine_install="never")
    result = run_cli(
        "run", "nightly-backup", "-i", inv, "--env", "production", "--journal-dir", tmp_path / "j",
        cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "the restic files engine could not run" in out
    assert "files_engine_install" in out and "'never'" in out and "install restic" in out
    ends = {e["step"]: e["status"] for e in events(tmp_path / "j") if e["event"] == "step_end"}
    assert ends.get("the files engine can run here") == "failed", ends
    started = {e["step"] for e in events(tmp_path / "j") if e["event"] == "step_start"}
    assert "snapshot database and files" not in started
    stored = list((tmp_path / "store").rglob("*")) if (tmp_path / "store").exists() else []
    assert not [p for p in stored if p.is_file()], stored  # nothing stored, not even a repository
    assert not (host.home / ".maintkit" / "bin").exists()  # and nothing installed


def test_nightly_backup_with_tar_skips_the_engine_preflight(
    bare: tuple[SSHHost, Path], tmp_path: Path
) -> None:
    """files_engine: tar (the default) runs nothing extra: the step is skipped, the snapshot is taken
    (on a host without restic whose sshd refuses forwarding, which tar does not need)."""
    host, known = bare
    inv = nightly_inventory(tmp_path, host, known, "tar")
    result = run_cli(
        "run", "nightly-backup", "-i", inv, "--env", "production", "--journal-dir", tmp_path / "j",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    journal = events(tmp_path / "j")
    started = [e["step"] for e in journal if e["event"] == "step_start"]
    assert "the files engine can run here" not in started, started
    ends = {e["step"]: e["status"] for e in journal if e["event"] == "step_end"}
    assert ends["the files engine can run here"] == "skipped", ends
    assert ends["snapshot database and files"] in ("ok", "changed"), ends
    assert list((tmp_path / "store").rglob("manifest.json"))
    assert list((tmp_path / "store").rglob("files.tar.*"))
