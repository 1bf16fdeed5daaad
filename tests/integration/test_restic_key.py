"""The light repository key (storage/restickey.py) against the real restic: restic and maintkit must
read each other's key files, a lightened repository keeps every byte and opens only with the light
key, and every way it can go wrong leaves the repository opening as before."""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import pytest

from maintkit.storage.local import LocalTarget
from maintkit.storage.restic import Repository, read_password
from maintkit.storage.restickey import (
    LIGHT_N,
    KeyFileError,
    key_params,
    lighten,
    open_key_file,
    seal_key_file,
)
from tests.integration.helpers import restic_password_file
from tests.sshd import skip_or_fail

pytestmark = pytest.mark.integration
KEY = "shop/production/restic"


@pytest.fixture(autouse=True)
def _restic() -> None:
    if shutil.which("restic") is None:
        skip_or_fail("restic is needed (apt-get install restic)")


def made(tmp_path: Path, password: str | None = None) -> tuple[Repository, LocalTarget, Path]:
    """A repository made by restic (calibrated key) holding one backup of a small folder."""
    password_file = restic_password_file(tmp_path, password)
    target = LocalTarget("local", tmp_path / "store")
    repo = Repository(str(target.root / KEY), password_file, name="local")
    repo.init()
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("first file\n")
    (data / "b.bin").write_bytes(bytes(range(256)) * 1000)
    repo.run("backup", str(data))
    return repo, target, data


def key_files(target: LocalTarget) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (target.root / KEY / "keys").iterdir()}


def restic_cpu(repo: Repository) -> float:
    """User + system CPU seconds of one ``restic cat config`` (the key derivation is most of it)."""
    start = resource.getrusage(resource.RUSAGE_CHILDREN)
    repo.run("cat", "config")
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)


def test_maintkit_opens_restic_s_key_and_restic_opens_maintkit_s(tmp_path: Path) -> None:
    repo, target, _ = made(tmp_path)
    password = read_password(repo.password_file)
    [(calibrated_id, calibrated)] = key_files(target).items()
    master = json.loads(repo.run("cat", "masterkey").stdout)
    assert open_key_file(password, calibrated) == master  # restic's AES-CTR + Poly1305-AES, read here
    with pytest.raises(KeyFileError):
        open_key_file("not-the-password-" + "x" * 26, calibrated)
    new_id, raw = seal_key_file(password, master)
    (target.root / KEY / "keys" / new_id).write_bytes(raw)
    listed = json.loads(repo.run("key", "list", "--json", env={"RESTIC_KEY_HINT": new_id}).stdout)
    [current] = [k for k in listed if k["current"]]
    assert new_id.startswith(current["id"]) and not calibrated_id.startswith(current["id"])


def test_lighten_leaves_one_light_key_and_every_byte(tmp_path: Path) -> None:
    repo, target, data = made(tmp_path)
    assert key_params(next(iter(key_files(target).values())))[0] > LIGHT_N  # restic calibrated it
    slow = restic_cpu(repo)
    assert lighten(repo, target, KEY) is True
    [(_, raw)] = key_files(target).items()
    assert key_params(raw) == (LIGHT_N, 8, 1)
    fast = restic_cpu(repo)
    assert fast < slow / 3, (slow, fast)
    repo.run("check", "--read-data")
    restored = tmp_path / "restored"
    repo.run("restore", "latest", "--target", str(restored))
    assert (restored / data.relative_to("/") / "b.bin").read_bytes() == (data / "b.bin").read_bytes()
    assert lighten(repo, target, KEY) is True  # already light: nothing to do
    assert len(key_files(target)) == 1


def test_a_password_a_human_wrote_keeps_restic_s_calibrated_key(tmp_path: Path) -> None:
    repo, target, _ = made(tmp_path, password="correct horse battery staple")
    before = key_files(target)
    assert lighten(repo, target, KEY) is False
    assert key_files(target) == before


def test_a_key_restic_does_not_open_with_is_removed_and_the_calibrated_one_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, target, _ = made(tmp_path)
    before = key_files(target)
    master = json.loads(repo.run("cat", "masterkey").stdout)
    other = Repository(str(tmp_path / "other"), repo.password_file)
    other.init()
    wrong = json.loads(other.run("cat", "masterkey").stdout)  # opens the key file, not the repository
    sealed = seal_key_file
    monkeypatch.setattr("maintkit.storage.restickey.seal_key_file", lambda pw, _: sealed(pw, wrong))
    monkeypatch.setattr("maintkit.storage.restickey.open_key_file", lambda pw, raw: master)
    written: list[str] = []
    put = target.put_bytes
    monkeypatch.setattr(target, "put_bytes", lambda key, data: (written.append(key), put(key, data)))
    assert lighten(repo, target, KEY) is False
    assert len(written) == 1  # it was written, restic would not use it, it was removed
    assert key_files(target) == before
    repo.run("cat", "config")  # opens as before
