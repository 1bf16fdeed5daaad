"""Reading a repository's snapshots without restic (storage/resticread.py), against the real restic:
the list must be restic's own, from a folder and from S3, and an altered object must be refused by
name, never listed."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest

from maintkit.jobs.restore.engine import check_snapshot, engine_source
from maintkit.storage.base import Target
from maintkit.storage.engine import repository
from maintkit.storage.local import LocalTarget
from maintkit.storage.manifest import Artifact
from maintkit.storage.restic import Repository, read_password
from maintkit.storage.restickey import lighten
from maintkit.storage.resticread import RepositoryReader, RepositoryReadError
from maintkit.storage.s3 import S3Target
from tests.integration.helpers import restic_password_file
from tests.s3server import MotoServer, use_fake_aws_credentials
from tests.sshd import skip_or_fail

pytestmark = pytest.mark.integration
KEY = "shop/production/restic"


@pytest.fixture(autouse=True)
def _restic() -> None:
    for tool in ("restic", "rclone"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is needed (apt-get install restic rclone)")


def three_nights(
    tmp_path: Path, target: Target, password: str | None = None, *, version: int = 2
) -> Repository:
    """A repository in ``target`` made by restic (format ``version``: 2 compresses, 1 does not), with
    three tagged backups of a changing folder."""
    password_file = restic_password_file(tmp_path, password)
    repo = repository(target, KEY, password_file)
    repo.run("init", "--repository-version", str(version))
    lighten(repo, target, KEY)
    data = tmp_path / "data"
    data.mkdir()
    for night in range(3):
        (data / f"night{night}.txt").write_text(f"night {night}\n" * 1000)
        repo.run("backup", "--tag", f"maintkit-night{night}", "--host", "shop", str(data))
    return repo


def restic_listing(repo: Repository) -> list[dict[str, object]]:
    listed = json.loads(repo.run("snapshots", "--json").stdout)
    return sorted(listed, key=lambda s: str(s["id"]))


def test_the_list_read_from_a_folder_is_restic_s_own(tmp_path: Path) -> None:
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target)
    reader = RepositoryReader.open(target, KEY, read_password(repo.password_file))
    assert reader is not None
    mine = reader.snapshots()
    assert sorted(mine, key=lambda s: str(s["id"])) == restic_listing(repo)  # every field, tree and tags
    assert [s["tags"] for s in mine] == [["maintkit-night0"], ["maintkit-night1"], ["maintkit-night2"]]
    newest = mine[-1]
    [found] = reader.snapshots(reader.snapshot_names(newest["short_id"]))  # the backup's summary: 8 chars
    assert found == newest
    (target.root / KEY / "snapshots" / "not-restic.tmp").write_bytes(b"partial")  # a killed writer's
    assert len(reader.snapshot_names()) == 3


def test_the_list_read_from_s3_is_restic_s_own(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_aws_credentials(monkeypatch, tmp_path)
    import boto3

    bucket = f"mk-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    target = S3Target("offsite", bucket, region="us-east-1", endpoint_url=moto_server.endpoint_url)
    repo = three_nights(tmp_path, target)  # restic writes through rclone; maintkit reads with boto3
    reader = RepositoryReader.open(target, KEY, read_password(repo.password_file))
    assert reader is not None
    assert sorted(reader.snapshots(), key=lambda s: str(s["id"])) == restic_listing(repo)


def test_an_altered_snapshot_is_refused_by_name(tmp_path: Path) -> None:
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target)
    reader = RepositoryReader.open(target, KEY, read_password(repo.password_file))
    assert reader is not None
    name = reader.snapshot_names()[0]
    path = target.root / KEY / "snapshots" / name
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    with pytest.raises(RepositoryReadError, match=f"{name} does not hash to its name"):
        reader.snapshots()
    forged = target.root / KEY / "snapshots" / hashlib.sha256(raw).hexdigest()
    forged.write_bytes(bytes(raw))  # renamed to the hash of its bytes: only the MAC can tell
    with pytest.raises(RepositoryReadError, match=f"{forged.name} fails its MAC"):
        reader.snapshot(forged.name)


def test_a_repository_without_the_light_key_is_left_to_restic(tmp_path: Path) -> None:
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target, password="correct horse battery staple")
    assert RepositoryReader.open(target, KEY, read_password(repo.password_file)) is None
    assert len(restic_listing(repo)) == 3


def test_a_format_1_repository_is_read_too(tmp_path: Path) -> None:
    """Repositories made by restic before 0.14 (format 1: nothing compressed) list the same way."""
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target, version=1)
    assert json.loads(repo.run("cat", "config").stdout)["version"] == 1
    reader = RepositoryReader.open(target, KEY, read_password(repo.password_file))
    assert reader is not None
    assert sorted(reader.snapshots(), key=lambda s: str(s["id"])) == restic_listing(repo)


def engine_artifact(snapshot: dict[str, object]) -> Artifact:
    """The manifest's artifact of a night that ``snapshot`` (restic's JSON, one maintkit tag) holds."""
    tags = snapshot["tags"]
    assert isinstance(tags, list) and len(tags) == 1
    return Artifact(
        "files.restic", KEY, 0, "", engine="restic", engine_snapshot=str(snapshot["id"]),
        engine_tag=str(tags[0]), engine_tree=str(snapshot["tree"]),
    )  # fmt: skip


def test_a_restore_finds_its_engine_snapshot_without_running_restic(tmp_path: Path) -> None:
    """The restore's tag-and-tree check (jobs/restore/engine.py) reads the list from storage when the
    light key opens: a restic that cannot run is never asked. With a human's password restic lists."""
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target)
    newest = restic_listing(repo)
    night2 = next(s for s in newest if s["tags"] == ["maintkit-night2"])
    artifact = engine_artifact(night2)
    source = engine_source(target, artifact, repo.password_file)
    source.repository.restic = str(tmp_path / "no-restic-here")
    assert check_snapshot(source, artifact)["tree"] == night2["tree"]
    assert source.snapshot == night2["id"]

    human = tmp_path / "human"
    human.mkdir()
    store = LocalTarget("local", human / "store")
    other = three_nights(human, store, password="correct horse battery staple")
    night0 = next(s for s in restic_listing(other) if s["tags"] == ["maintkit-night0"])
    artifact = engine_artifact(night0)
    source = engine_source(store, artifact, other.password_file)
    source.repository.restic = str(tmp_path / "no-restic-here")
    with pytest.raises(FileNotFoundError):  # the calibrated key: restic must list, and is missing
        check_snapshot(source, artifact)
    source.repository.restic = "restic"
    assert check_snapshot(source, artifact)["id"] == night0["id"]


def test_a_damaged_snapshot_that_is_not_restored_does_not_stop_a_restore(tmp_path: Path) -> None:
    """The reader refuses a list with a damaged object in it; the restore's check then asks restic,
    the authority, rather than refusing a night that is intact."""
    target = LocalTarget("local", tmp_path / "store")
    repo = three_nights(tmp_path, target)
    listing = restic_listing(repo)
    night0 = next(s for s in listing if s["tags"] == ["maintkit-night0"])
    night2 = next(s for s in listing if s["tags"] == ["maintkit-night2"])
    path = target.root / KEY / "snapshots" / str(night0["id"])
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    artifact = engine_artifact(night2)
    source = engine_source(target, artifact, repo.password_file)
    assert check_snapshot(source, artifact)["tree"] == night2["tree"]
    assert source.snapshot == night2["id"]
