"""The local folder target, FanOut, snapshot ids and keys, and the manifest (on a real filesystem)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maintkit.storage.base import (
    ArtifactWriter,
    StorageError,
    new_snapshot_id,
    parse_snapshot_id,
    snapshot_key,
    snapshot_prefix,
)
from maintkit.storage.fanout import FanOut
from maintkit.storage.local import LocalTarget
from maintkit.storage.manifest import (
    Artifact,
    ArtifactCheck,
    DatabaseInfo,
    Manifest,
    ManifestError,
    Table,
    Verification,
    list_snapshots,
    manifest_key,
    read_manifest,
    read_verification,
    write_manifest,
    write_verification,
)
from maintkit.transport.local import LocalTransport

MiB = 2**20
T0 = datetime(2026, 11, 22, 3, 15, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    return LocalTarget("local", tmp_path / "snapshots")


# -- snapshot ids and keys ---------------------------------------------------------------------------
def test_snapshot_ids_are_utc_seconds_and_sort_by_time() -> None:
    assert new_snapshot_id(T0) == "20261122T031500Z"
    assert new_snapshot_id(datetime(2026, 11, 22, 3, 15)) == "20261122T031500Z"  # naive: UTC
    paris = datetime.fromisoformat("2026-11-22T04:15:00+01:00")
    assert new_snapshot_id(paris) == "20261122T031500Z"
    times = [
        datetime(2026, m, d, h, tzinfo=UTC) for m, d, h in [(1, 2, 3), (11, 1, 0), (11, 1, 23), (12, 31, 9)]
    ]
    made = [new_snapshot_id(t) for t in times]
    assert sorted(made) == made


def test_a_second_snapshot_in_the_same_second_gets_a_counter() -> None:
    assert new_snapshot_id(T0, ["20261122T031500Z"]) == "20261122T031500Z-2"
    assert new_snapshot_id(T0, ["20261122T031500Z", "20261122T031500Z-2"]) == "20261122T031500Z-3"
    assert sorted(["20261122T031500Z-2", "20261122T031500Z", "20261122T031501Z"])[1] == "20261122T031500Z-2"


def test_parse_snapshot_id() -> None:
    assert parse_snapshot_id("20261122T031500Z") == T0
    assert parse_snapshot_id("20261122T031500Z-2") == T0
    for other in ("releases", "20261322T031500Z", "20261122T031500", ""):
        assert parse_snapshot_id(other) is None


def test_snapshot_keys_follow_the_layout_and_refuse_escapes() -> None:
    assert snapshot_key("shop", "production", "20261122T031500Z", "db.sql.zst") == (
        "shop/production/20261122T031500Z/db.sql.zst"
    )
    assert snapshot_prefix("shop", "production") == "shop/production/"
    for bad in ("..", ".", "", "a/b", "a\\b", "x\ny"):
        with pytest.raises(ValueError, match="invalid"):
            snapshot_key(bad, "production", "20261122T031500Z", "db.sql.zst")


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a//b", "a/../../b", "a/"])
def test_keys_cannot_leave_the_folder(target: LocalTarget, key: str) -> None:
    with pytest.raises(ValueError):
        target.open_writer(key)


# -- the local target --------------------------------------------------------------------------------
def test_nothing_is_visible_before_commit(target: LocalTarget) -> None:
    with target.open_writer("shop/prod/ID/db.sql.zst") as writer:
        writer.write(b"x" * 1000)
        final = target.root / "shop/prod/ID/db.sql.zst"
        assert not final.exists()
        assert not target.exists("shop/prod/ID/db.sql.zst")
        assert (target.root / "shop/prod/ID/db.sql.zst.part").exists()
        assert target.list_keys("") == []
        writer.commit()
    assert final.read_bytes() == b"x" * 1000
    assert not (target.root / "shop/prod/ID/db.sql.zst.part").exists()
    assert target.exists("shop/prod/ID/db.sql.zst")
    assert target.size("shop/prod/ID/db.sql.zst") == 1000


def test_files_are_0600_and_new_folders_0700(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        target = LocalTarget("local", tmp_path / "snapshots")
        target.put_bytes("shop/prod/ID/manifest.json", b"{}")
    finally:
        os.umask(old_umask)
    assert mode(target.root / "shop/prod/ID/manifest.json") == 0o600
    for folder in ("", "shop", "shop/prod", "shop/prod/ID"):
        assert mode(target.root / folder) == 0o700, folder


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LocalTarget("local", "~/backups").root == tmp_path / "backups"


def test_abort_removes_the_partial_file_and_is_idempotent(target: LocalTarget) -> None:
    writer = target.open_writer("shop/prod/ID/db.sql.zst")
    writer.write(b"partial")
    writer.abort()
    writer.abort()
    assert list(target.root.rglob("*")) == [target.root / p for p in ("shop", "shop/prod", "shop/prod/ID")]
    with pytest.raises(StorageError):
        writer.write(b"more")
    with pytest.raises(StorageError):
        writer.commit()


def test_leaving_the_block_without_commit_aborts(target: LocalTarget) -> None:
    with pytest.raises(RuntimeError), target.open_writer("k/v") as writer:
        writer.write(b"data")
        raise RuntimeError("the dump failed")
    assert not list(target.root.rglob("*.part"))
    assert not target.exists("k/v")


def test_abort_after_commit_keeps_the_object(target: LocalTarget) -> None:
    writer = target.open_writer("k/v")
    writer.write(b"data")
    writer.commit()
    writer.commit()  # idempotent
    writer.abort()
    assert target.get_bytes("k/v") == b"data"


def test_reading(target: LocalTarget) -> None:
    data = os.urandom(3 * MiB + 17)
    target.put_bytes("a/b/c", data)
    with target.open_reader("a/b/c") as reader:
        assert b"".join(iter(lambda: reader.read(64 * 1024), b"")) == data
    with pytest.raises(StorageError, match="not found"):
        target.get_bytes("a/b/missing")
    with pytest.raises(StorageError, match="not found"):
        target.size("a/b/missing")


def test_listing_and_deleting(target: LocalTarget) -> None:
    for key in (
        "s/prod/20261122T031500Z/db",
        "s/prod/20261122T031500Z/manifest.json",
        "s/prod/20261123T031500Z/db",
        "s/staging/20261122T031500Z/db",
    ):
        target.put_bytes(key, key.encode())
    target.open_writer("s/prod/20261124T031500Z/db").write(b"unfinished")  # a .part left by a crash
    assert target.list_dir("s/") == ["prod", "staging"]
    assert target.list_dir("s/prod/") == ["20261122T031500Z", "20261123T031500Z", "20261124T031500Z"]
    assert target.list_dir("s/prod") == target.list_dir("s/prod/")
    assert target.list_dir("nothing/here/") == []
    listed = target.list_keys("s/prod/")
    assert [(key, size) for key, size, _ in listed] == [
        ("s/prod/20261122T031500Z/db", 26),
        ("s/prod/20261122T031500Z/manifest.json", 37),
        ("s/prod/20261123T031500Z/db", 26),
    ]
    assert all(modified.tzinfo is not None for _, _, modified in listed)
    assert [key for key, _, _ in target.list_keys("s/prod/20261122")] == [
        "s/prod/20261122T031500Z/db",
        "s/prod/20261122T031500Z/manifest.json",
    ]
    assert target.delete_prefix("s/prod/20261122T031500Z/") == 2
    assert target.delete_prefix("s/prod/20261124T031500Z/") == 1  # the .part goes too
    assert target.list_dir("s/prod/") == ["20261123T031500Z"]
    assert target.delete_prefix("s/prod/nothing/") == 0
    with pytest.raises(ValueError, match="empty prefix"):
        target.delete_prefix("")
    with pytest.raises(ValueError, match="empty prefix"):
        target.delete_prefix("/")
    assert target.exists("s/staging/20261122T031500Z/db")


def test_check_creates_the_folder_or_says_why_not(tmp_path: Path) -> None:
    LocalTarget("local", tmp_path / "a" / "b").check()
    assert mode(tmp_path / "a" / "b") == 0o700
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="storage target 'bad': cannot create"):
        LocalTarget("bad", tmp_path / "file" / "sub").check()


# -- FanOut ------------------------------------------------------------------------------------------
class FailingWriter(ArtifactWriter):
    """A writer whose target breaks after ``fail_after`` bytes (or at commit)."""

    def __init__(self, fail_after: int | None = None, fail_commit: bool = False) -> None:
        self.key = "failing"
        self.fail_after = fail_after
        self.fail_commit = fail_commit
        self.written = 0
        self.aborts = 0
        self._committed = False

    @property
    def committed(self) -> bool:
        return self._committed

    def write(self, data: bytes, /) -> int:
        self.written += len(data)
        if self.fail_after is not None and self.written > self.fail_after:
            raise StorageError("disk full")
        return len(data)

    def commit(self) -> None:
        if self.fail_commit:
            raise StorageError("commit refused")
        self._committed = True

    def abort(self) -> None:
        self.aborts += 1


def test_fanout_writes_the_same_bytes_everywhere_and_hashes_them(tmp_path: Path) -> None:
    a, b = LocalTarget("a", tmp_path / "a"), LocalTarget("b", tmp_path / "b")
    progress: list[int] = []
    chunks = [os.urandom(n) for n in (1, 65536, 0, 1000, 3 * MiB)]
    with FanOut([a.open_writer("k/db"), b.open_writer("k/db")], progress=progress.append) as fan:
        for chunk in chunks:
            fan.write(chunk)
        fan.commit()
    data = b"".join(chunks)
    assert fan.size == len(data)
    assert fan.sha256 == hashlib.sha256(data).hexdigest()
    assert a.get_bytes("k/db") == b.get_bytes("k/db") == data
    assert progress == [1, 65537, 66537, len(data)]


def test_fanout_is_a_transport_sink(tmp_path: Path) -> None:
    """The point of FanOut: a command's stdout streams into every target, read once."""
    a, b = LocalTarget("a", tmp_path / "a"), LocalTarget("b", tmp_path / "b")
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(5 * MiB + 3))
    with FanOut([a.open_writer("k/files.tar"), b.open_writer("k/files.tar")]) as fan:
        result = LocalTransport().run(f"cat {source}", stdout=fan, timeout=30)
        assert result.rc == 0
        fan.commit()
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert fan.sha256 == expected
    assert hashlib.sha256(a.get_bytes("k/files.tar")).hexdigest() == expected
    assert b.get_bytes("k/files.tar") == source.read_bytes()


def test_a_failing_target_fails_the_fanout_and_abort_cleans_up(tmp_path: Path) -> None:
    local = LocalTarget("a", tmp_path / "a")
    failing = FailingWriter(fail_after=1500)
    fan = FanOut([local.open_writer("k/db"), failing])
    fan.write(b"x" * 1000)
    with pytest.raises(StorageError, match="disk full"):
        fan.write(b"x" * 1000)
    with pytest.raises(StorageError, match="earlier write failed"):
        fan.write(b"x")
    with pytest.raises(StorageError, match="cannot commit"):
        fan.commit()
    fan.abort()  # again: idempotent
    assert failing.aborts == 2
    assert not list((tmp_path / "a").rglob("*.part"))
    assert not local.exists("k/db")


def test_a_failing_commit_aborts_the_writers_after_it(tmp_path: Path) -> None:
    a, c = LocalTarget("a", tmp_path / "a"), LocalTarget("c", tmp_path / "c")
    failing = FailingWriter(fail_commit=True)
    fan = FanOut([a.open_writer("k/db"), failing, c.open_writer("k/db")])
    fan.write(b"data")
    with pytest.raises(StorageError, match="commit refused"):
        fan.commit()
    assert a.exists("k/db")  # committed before the failure: an unfinished snapshot, swept later
    assert not c.exists("k/db")
    assert not list((tmp_path / "c").rglob("*.part"))
    with pytest.raises(StorageError):
        fan.write(b"more")


def test_fanout_open_is_all_or_nothing(tmp_path: Path) -> None:
    good = LocalTarget("good", tmp_path / "good")
    (tmp_path / "file").write_text("not a folder")
    bad = LocalTarget("bad", tmp_path / "file")
    with pytest.raises(StorageError, match="storage target 'bad': cannot write"):
        FanOut.open([good, bad], "k/db")
    assert not list((tmp_path / "good").rglob("*.part"))
    with FanOut.open([good, LocalTarget("other", tmp_path / "other")], "k/db") as fan:
        fan.write(b"data")
        fan.commit()
    assert good.get_bytes("k/db") == b"data"


def test_fanout_needs_a_writer() -> None:
    with pytest.raises(ValueError):
        FanOut([])


# -- manifest and verification -------------------------------------------------------------------
def manifest(snapshot_id: str = "20261122T031500Z") -> Manifest:
    return Manifest(
        snapshot_id=snapshot_id,
        site="shop",
        env="production",
        host="prod1",
        run_id="run-1",
        tool_version="0.1.0",
        created=T0,
        finished=datetime(2026, 11, 22, 3, 20, tzinfo=UTC),
        artifacts=[
            Artifact(
                name="db.sql.zst",
                key=snapshot_key("shop", "production", snapshot_id, "db.sql.zst"),
                size=1234,
                sha256="ab" * 32,
                compression="zstd",
                encryption="age",
                source="mariadb-dump of shop on prod1",
            ),
        ],
        database=DatabaseInfo("shop", [Table("sales_order", 1200), Table("cache", None)]),
        fingerprint={"composer.lock": "cd" * 32},
        timings={"dump": 12.5, "upload": 3.25},
    )


def test_manifest_round_trip(target: LocalTarget) -> None:
    original = manifest()
    key = write_manifest(target, original)
    assert key == "shop/production/20261122T031500Z/manifest.json"
    assert read_manifest(target, "shop", "production", "20261122T031500Z") == original
    raw = json.loads(target.get_bytes(key))
    assert next(iter(raw)) == "format_version"
    assert raw["created"] == "2026-11-22T03:15:00Z"
    assert raw["database"]["tables"][0] == {"name": "sales_order", "rows": 1200}
    assert original.size == 1234
    assert original.artifact("db.sql.zst") is original.artifacts[0]
    assert read_manifest(target, "shop", "production", "20261123T000000Z") is None


def test_manifest_naive_times_are_utc_and_unknown_fields_ignored() -> None:
    raw = json.loads(manifest().to_json())
    raw["created"] = "2026-11-22T03:15:00"
    raw["added_later"] = {"anything": 1}
    assert Manifest.from_json(json.dumps(raw)).created == T0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 3}, "format 3, written by a newer maintkit"),
        ({"format_version": None}, "has no format_version"),
        (
            {"artifacts": [{"name": "x", "key": "k", "size": 1, "sha256": "s", "compression": "lz4"}]},
            "artifacts.0.compression",
        ),
        ({"created": "yesterday"}, "created"),
    ],
)
def test_bad_manifests_are_refused_clearly(change: dict[str, object], message: str) -> None:
    raw = json.loads(manifest().to_json())
    raw.update(change)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(raw))
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json(b"{truncated")


def test_verification_round_trip(target: LocalTarget) -> None:
    record = Verification(
        snapshot_id="20261122T031500Z",
        time=T0,
        ok=False,
        results=[
            ArtifactCheck(
                "db.sql.zst",
                False,
                1234,
                "ab" * 32,
                {"size": True, "sha256": True, "dump_trailer": False},
                "no '-- Dump completed' trailer",
            ),
        ],
        tool_version="0.1.0",
        duration=1.5,
    )
    key = write_verification(target, "shop", "production", record)
    assert key == "shop/production/20261122T031500Z/verification.json"
    assert read_verification(target, "shop", "production", "20261122T031500Z") == record
    assert read_verification(target, "shop", "production", "20261123T000000Z") is None


def test_list_snapshots(target: LocalTarget) -> None:
    write_manifest(target, manifest("20261120T031500Z"))
    target.put_bytes(snapshot_key("shop", "production", "20261120T031500Z", "db.sql.zst"), b"x" * 100)
    write_manifest(target, manifest("20261121T031500Z"))
    write_verification(target, "shop", "production", Verification("20261121T031500Z", T0, ok=True))
    write_manifest(target, manifest("20261122T031500Z"))
    write_verification(target, "shop", "production", Verification("20261122T031500Z", T0, ok=False))
    target.put_bytes(snapshot_key("shop", "production", "20261123T031500Z", "db.sql.zst"), b"partial")
    target.put_bytes(manifest_key("shop", "production", "20261124T031500Z"), b'{"format_version": 9}')
    target.put_bytes("shop/production/releases/r1.json", b"{}")  # not a snapshot: never listed
    infos = {info.id: info for info in list_snapshots(target, "shop", "production")}
    assert list(infos) == [
        "20261120T031500Z",
        "20261121T031500Z",
        "20261122T031500Z",
        "20261123T031500Z",
        "20261124T031500Z",
    ]
    assert [(i.complete, i.verified, i.problem is None) for i in infos.values()] == [
        (True, False, True),
        (True, True, True),
        (True, False, True),
        (False, False, True),
        (True, False, False),
    ]
    assert infos["20261120T031500Z"].size == 100 + len(manifest("20261120T031500Z").to_json())
    assert infos["20261123T031500Z"].time == datetime(2026, 11, 23, 3, 15, tzinfo=UTC)
    assert "newer maintkit" in (infos["20261124T031500Z"].problem or "")
    assert list_snapshots(target, "shop", "staging") == []


def test_writeback_along_the_way_keeps_every_byte(
    target: LocalTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append(advice)
        real(fd, offset, length, advice)

    monkeypatch.setattr("maintkit.storage.local.WRITEBACK_EVERY", 1024 * 1024)
    monkeypatch.setattr(os, "posix_fadvise", spy)
    writer = target.open_writer("snap/big.bin")
    digest = hashlib.sha256()
    for i in range(40):
        chunk = bytes([i]) * 300_000
        digest.update(chunk)
        writer.write(chunk)
    writer.commit()
    assert len(calls) >= 10  # the kernel was asked to write back as the artifact grew
    stored = (target.root / "snap/big.bin").read_bytes()
    assert len(stored) == 12_000_000 and hashlib.sha256(stored).hexdigest() == digest.hexdigest()


def test_before_names_the_newest_complete_snapshot_older_than_an_id_even_a_lost_one(
    target: LocalTarget,
) -> None:
    from maintkit.storage.operations import resolve_snapshot

    write_manifest(target, manifest("20261120T031500Z"))
    write_manifest(target, manifest("20261121T031500Z"))
    target.put_bytes(snapshot_key("shop", "production", "20261121T120000Z", "db.sql.zst"), b"partial")
    write_manifest(target, manifest("20261123T031500Z"))  # taken after the lost one: never chosen
    found = resolve_snapshot(target, "shop", "production", "before:20261122T031500Z")
    assert found.snapshot_id == "20261121T031500Z"  # the unfinished 20261121T120000Z is skipped
    with pytest.raises(
        Exception, match="no complete snapshot of shop/production older than 20261120T031500Z"
    ):
        resolve_snapshot(target, "shop", "production", "before:20261120T031500Z")
    assert resolve_snapshot(target, "shop", "production", "latest").snapshot_id == "20261123T031500Z"


def test_the_next_snapshot_sweeps_unfinished_snapshots_of_earlier_runs_and_keeps_the_rest(tmp_path):
    from datetime import UTC, datetime

    from maintkit.storage.cleanup import sweep_debris
    from maintkit.storage.local import LocalTarget

    target = LocalTarget("here", tmp_path)
    base = tmp_path / "shop" / "prod"
    for name, files in {
        "20261201T000000Z": ["db.sql.zst", "manifest.json"],  # complete: kept
        "20261202T000000Z": ["db.sql.zst"],  # committed dump, no manifest: debris
        "20261203T000000Z": ["files.tar.zst.part"],  # a crash mid-write: debris
        "20261205T000000Z": ["db.sql.zst"],  # newer than the run: another host's, being written
        "promotable": ["record.json"],  # not a snapshot
    }.items():
        (base / name).mkdir(parents=True)
        for file in files:
            (base / name / file).write_bytes(b"x")
    removed = sweep_debris([target], "shop", "prod", datetime(2026, 12, 4, tzinfo=UTC))
    assert sorted(removed) == ["here:shop/prod/20261202T000000Z/", "here:shop/prod/20261203T000000Z/"]
    assert sorted(p.name for p in base.iterdir()) == ["20261201T000000Z", "20261205T000000Z", "promotable"]
