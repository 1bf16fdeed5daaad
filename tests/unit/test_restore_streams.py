"""The control-node checks of a restore: the verifying reader, the tar guard, the dump row counter."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest
import zstandard

from maintkit.jobs.restore.dumprows import DumpRowCounter
from maintkit.jobs.restore.inspect import ArchiveInspector, DumpInspector
from maintkit.jobs.restore.stream import IntegrityError, PrefixedReader, UnsafeContent, VerifyingReader
from maintkit.jobs.restore.tarcheck import TarGuard, UnsafeMember, leaves_root, link_leaves_root
from maintkit.storage.manifest import Artifact


def artifact_of(data: bytes, name: str = "db.sql.zst", compression: str = "zstd") -> Artifact:
    return Artifact(name, f"s/e/i/{name}", len(data), hashlib.sha256(data).hexdigest(), compression)  # type: ignore[arg-type]


def read_all(reader: object, size: int = 64 * 1024) -> bytes:
    out = []
    while chunk := reader.read(size):  # type: ignore[attr-defined]
        out.append(chunk)
    return b"".join(out)


# -- VerifyingReader ----------------------------------------------------------------------------------


def test_the_reader_releases_every_byte_and_ends_only_when_the_digest_matches() -> None:
    data = random.Random(1).randbytes(1_000_000)
    seen = []
    reader = VerifyingReader(io.BytesIO(data), artifact_of(data), seen.append, chunk=100_000)
    assert read_all(reader) == data
    assert reader.verified and reader.size == len(data) and b"".join(seen) == data


def test_the_last_chunk_is_held_back_when_the_digest_differs() -> None:
    data = random.Random(2).randbytes(300_000)
    stored = bytearray(data)
    stored[-1] ^= 1  # the last byte differs: only the end of the stream can tell
    reader = VerifyingReader(io.BytesIO(bytes(stored)), artifact_of(data), chunk=100_000)
    released = [reader.read(), reader.read()]
    with pytest.raises(IntegrityError, match=r"db\.sql\.zst: SHA-256 mismatch"):
        reader.read()
    assert sum(map(len, released)) == 200_000  # the last 100 kB never left
    assert not reader.verified


def test_a_longer_artifact_fails_as_soon_as_it_passes_the_manifest_size() -> None:
    data = b"x" * 1000
    reader = VerifyingReader(io.BytesIO(data * 10), artifact_of(data), chunk=600)
    with pytest.raises(IntegrityError, match="longer than the manifest's 1000 bytes"):
        read_all(reader)
    short = VerifyingReader(io.BytesIO(data[:10]), artifact_of(data))
    with pytest.raises(IntegrityError, match="size mismatch: stored 10 bytes"):
        read_all(short)


def test_an_empty_artifact_and_the_credentials_prefix() -> None:
    reader = VerifyingReader(io.BytesIO(b""), artifact_of(b""))
    assert reader.read() == b"" and reader.verified
    data = b"dump"
    prefixed = PrefixedReader(b"[client]\n", VerifyingReader(io.BytesIO(data), artifact_of(data)))
    assert read_all(prefixed) == b"[client]\ndump"


# -- the tar guard -----------------------------------------------------------------------------------


def tar_bytes(
    *members: tarfile.TarInfo, data: dict[str, bytes] | None = None, fmt: int = tarfile.GNU_FORMAT
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def guard(archive: bytes, piece: int = 700) -> TarGuard:
    checker = TarGuard()
    for start in range(0, len(archive), piece):  # odd-sized pieces: headers split across writes
        checker.write(archive[start : start + piece])
    return checker


def test_a_real_site_archive_passes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "pub" / "media").mkdir(parents=True)
    (site / "pub" / "media" / "a.jpg").write_bytes(random.Random(3).randbytes(5000))
    (site / ("deep/" * 40)).mkdir(parents=True)  # a name longer than 100 bytes
    (site / ("deep/" * 40) / "f.txt").write_text("x")
    (site / "index.php").write_text("<?php")
    (site / "current").symlink_to("pub/media")
    (site / "pub" / "up").symlink_to("../index.php")
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
            archive.add(site, arcname=".")
        checker = guard(buffer.getvalue())
        assert checker.members == 48 and checker.complete  # ., pub, media, 40 deep folders, 5 more


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (member("../escape.txt"), "outside the restore root ('..' in the path)"),
        (member("./a/../../escape.txt"), "'..' in the path"),
        (member("/etc/cron.d/x"), "absolute path"),
        (member("./link", tarfile.SYMTYPE, "/etc"), "symlink to an absolute path"),
        (member("./a/link", tarfile.SYMTYPE, "../../etc"), "symlink pointing outside the root"),
        (member("./hard", tarfile.LNKTYPE, "../x"), "hard link './hard' -> '../x'"),
        (member("./dev", tarfile.CHRTYPE), "is a device node"),
    ],
)
def test_unsafe_members_are_refused(bad: tarfile.TarInfo, why: str) -> None:
    archive = tar_bytes(member("./ok.txt"), bad, data={"./ok.txt": b"fine"})
    with pytest.raises(UnsafeMember, match=r"\b" if not why else None) as error:
        guard(archive)
    assert why in str(error.value)


def test_long_names_from_pax_and_gnu_headers_are_checked() -> None:
    evil = "./" + "a/" * 60 + "../" * 61 + "etc/passwd"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        with pytest.raises(UnsafeMember, match=r"'\.\.' in the path"):
            guard(tar_bytes(member(evil), fmt=fmt))
    long_link = "../" * 50 + "etc"
    with pytest.raises(UnsafeMember, match="symlink pointing outside"):
        guard(tar_bytes(member("./l", tarfile.SYMTYPE, long_link), fmt=tarfile.PAX_FORMAT))


def test_a_corrupt_header_is_refused() -> None:
    archive = bytearray(tar_bytes(member("./a.txt"), data={"./a.txt": b"x"}))
    archive[10] ^= 0xFF
    with pytest.raises(UnsafeMember, match="not a valid tar header at byte 0"):
        guard(bytes(archive))


def test_path_rules() -> None:
    assert leaves_root("./a/b..c/..d") is None
    assert link_leaves_root("a/b/link", "../c") is None
    assert link_leaves_root("a/link", "../../c") == "symlink pointing outside the root"
    assert link_leaves_root("link", "./sub/../..") == "symlink pointing outside the root"


def test_the_archive_inspector_names_the_artifact() -> None:
    archive = zstandard.ZstdCompressor().compress(tar_bytes(member("./x"), member("../y")))
    inspector = ArchiveInspector(artifact_of(archive, "files.tar.zst"))
    with pytest.raises(UnsafeContent, match=r"^files\.tar\.zst: member '\.\./y'"):
        inspector(archive)
    gzip_data = b"\x1f\x8b" + b"\0" * 30
    with pytest.raises(IntegrityError, match="the data is gzip, the manifest says zstd"):
        ArchiveInspector(artifact_of(gzip_data, "files.tar.zst"))(gzip_data)


# -- the dump row counter ------------------------------------------------------------------------------

DUMP = b"""-- MariaDB dump
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE `t1` (`a` int, `b` text);
LOCK TABLES `t1` WRITE;
INSERT INTO `t1` VALUES
(1,'a (b), (c)'),
(2,'it\\'s; \\\\ (x)'),
(3,'doubled '' quote ('),
(4,NULL);
INSERT INTO `t1` VALUES (5,'x'),(6,'y\\n(z)');
UNLOCK TABLES;
CREATE TABLE `we``ird` (`a` blob);
INSERT INTO `we``ird` VALUES (0x28293B27),(0x00);
CREATE TABLE `empty` (`a` int);
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER tr BEFORE INSERT ON t1 FOR EACH ROW
BEGIN
INSERT INTO `log` VALUES (1),(2);
END */;;
DELIMITER ;
REPLACE INTO `t3` VALUES (1);
-- Dump completed on 2026-11-22
"""


@pytest.mark.parametrize("line_limit", [8 * 1024 * 1024, 5])
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 10_000])
def test_rows_are_counted_per_table_whatever_the_chunking(
    piece: int, line_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("maintkit.jobs.restore.dumprows.LINE_LIMIT", line_limit)  # 5: scanned piecewise
    counter = DumpRowCounter()
    for start in range(0, len(DUMP), piece):
        counter.write(DUMP[start : start + piece])
    assert counter.rows == {"t1": 6, "we`ird": 2, "t3": 1}


ODD_DUMP = b"""INSERT INTO `t4` VALUES (1,'a;b'),
(2,'(');
INSERT INTO `t4` VALUES (3),(4); INSERT INTO `t5` VALUES (9);
INSERT INTO `t5` VALUES
(1,'x'),
(2,'y');
-- Dump completed on 2026-11-22
"""


@pytest.mark.parametrize("piece", [1, 5, 64, 10_000])
def test_regions_with_strings_and_a_statement_ending_mid_line_count_as_line_by_line(piece: int) -> None:
    counter = DumpRowCounter()
    for start in range(0, len(ODD_DUMP), piece):
        counter.write(ODD_DUMP[start : start + piece])
    # the INSERT after "; " on the same line is not at a line start: not a statement of the dump
    assert counter.rows == {"t4": 4, "t5": 2}


def test_the_dump_inspector_counts_rows_and_checks_the_trailer() -> None:
    data = zstandard.ZstdCompressor().compress(DUMP)
    inspector = DumpInspector(artifact_of(data))
    inspector(data)
    inspector.finish()
    assert inspector.rows.rows["t1"] == 6 and inspector.watcher.tables == ["t1", "we`ird", "empty"]
    cut = zstandard.ZstdCompressor().compress(DUMP[:200])
    truncated = DumpInspector(artifact_of(cut))
    truncated(cut)
    with pytest.raises(IntegrityError, match="trailer"):
        truncated.finish()
    garbage = DumpInspector(artifact_of(b"\x28\xb5\x2f\xfd" + b"\xff" * 40))
    with pytest.raises(IntegrityError, match=r"^db\.sql\.zst: .*invalid zstd data"):
        garbage(b"\x28\xb5\x2f\xfd" + b"\xff" * 40)
