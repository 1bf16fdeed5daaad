"""age encryption of snapshot artifacts: streaming round trips, bounded memory, clear errors, config."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pyrage
import pytest
import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from maintkit.model.problems import InvalidInput
from maintkit.storage.base import snapshot_key
from maintkit.storage.config import encryption_from_vars
from maintkit.storage.encryption import (
    AGE_MAGIC,
    DecryptionError,
    EncryptionError,
    Encryptor,
    decrypting_reader,
    load_identities,
    load_recipients,
    parse_recipient,
    recipient_fingerprint,
)
from maintkit.storage.fanout import FanOut
from maintkit.storage.local import LocalTarget
from maintkit.storage.manifest import Artifact
from maintkit.storage.verify import verify_artifact
from maintkit.transport.local import LocalTransport

MiB = 1024 * 1024
AGE_CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.fixture(scope="module")
def recipient(identity: pyrage.x25519.Identity) -> str:
    return str(identity.to_public())


class Recorder:
    """A sink that keeps what it receives and the size of its largest single write."""

    def __init__(self, delay: float = 0.0) -> None:
        self.buffer = io.BytesIO()
        self.largest = 0
        self.writes = 0
        self.delay = delay

    def write(self, data: bytes) -> int:
        if self.delay:
            time.sleep(self.delay)
        self.largest = max(self.largest, len(data))
        self.writes += 1
        return self.buffer.write(data)

    @property
    def data(self) -> bytes:
        return self.buffer.getvalue()


def chunks(total: int, seed: int = 1, largest: int = 48 * 1024) -> Any:
    """Deterministic pseudo-random chunks of random small sizes, never the whole stream at once."""
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        n = min(rng.randint(1, largest), total - sent)
        yield rng.randbytes(n)
        sent += n


def encrypt(data_chunks: Any, recipients: list[Any], sink: Any = None) -> Recorder:
    sink = sink or Recorder()
    encryptor = Encryptor(sink, recipients)
    for chunk in data_chunks:
        encryptor.write(chunk)
    encryptor.close()
    return sink


def test_round_trip_of_a_few_megabytes_in_small_writes(identity, recipient) -> None:
    plain = b"".join(chunks(5 * MiB + 17))
    sink = encrypt(chunks(5 * MiB + 17), [recipient])
    stored = sink.data
    assert stored.startswith(AGE_MAGIC)
    assert AGE_CHUNK < sink.largest <= AGE_CHUNK + 16 + 1024  # age chunks, never the whole artifact
    assert sink.writes > 50
    assert pyrage.decrypt(stored, [identity]) == plain  # standard age: the `age` CLI reads it too

    out = hashlib.sha256()
    with decrypting_reader(io.BytesIO(stored), [identity]) as reader:
        while piece := reader.read(7777):
            assert len(piece) <= 7777
            out.update(piece)
    assert out.hexdigest() == hashlib.sha256(plain).hexdigest()


def test_empty_and_tiny_streams(identity, recipient) -> None:
    for plain in (b"", b"x"):
        stored = encrypt([plain] if plain else [], [recipient]).data
        with decrypting_reader(io.BytesIO(stored), [identity]) as reader:
            assert reader.read() == plain


def test_memory_stays_bounded_whatever_the_size(recipient) -> None:
    """32 MiB from a fast source into a slow sink, through a 1 MiB pipe: Python's peak stays ~1.5 MiB.

    (The same run with a 64 MiB pipe peaks near 10 MiB: the bound is the pipe, not luck.)
    """

    class SlowSink:
        def __init__(self) -> None:
            self.count = 0
            self.hash = hashlib.sha256()

        def write(self, data: bytes) -> int:
            self.count += 1
            if self.count % 8 == 0:
                time.sleep(0.002)  # a target catching up: backpressure, not buffering
            self.hash.update(data)
            return len(data)

    block = os.urandom(256 * 1024)
    tracemalloc.start()
    try:
        encryptor = Encryptor(SlowSink(), [recipient], limit=MiB)
        for _ in range(128):
            encryptor.write(block)
        encryptor.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB for a 32 MiB artifact"


def test_the_whole_path_from_a_command_to_the_targets(tmp_path, identity, recipient) -> None:
    """A command's stdout → Encryptor → FanOut → two folders: the FanOut hashes the ciphertext."""
    a, b = LocalTarget("a", tmp_path / "a"), LocalTarget("b", tmp_path / "b")
    source = tmp_path / "dump.bin"
    source.write_bytes(os.urandom(3 * MiB + 5))
    with FanOut([a.open_writer("k/db.age"), b.open_writer("k/db.age")]) as fan:
        encryptor = Encryptor(fan, [recipient])
        result = LocalTransport().run(f"cat {source}", stdout=encryptor, timeout=30)
        assert result.rc == 0
        encryptor.close()
        fan.commit()
    stored = a.get_bytes("k/db.age")
    assert stored == b.get_bytes("k/db.age")
    assert fan.sha256 == hashlib.sha256(stored).hexdigest() and fan.size == len(stored)
    assert pyrage.decrypt(stored, [identity]) == source.read_bytes()


def test_several_recipients_each_decrypt(recipient, identity) -> None:
    other = pyrage.x25519.Identity.generate()
    stored = encrypt([b"secret dump"], [recipient, str(other.to_public())]).data
    for key in (identity, other):
        with decrypting_reader(io.BytesIO(stored), [key]) as reader:
            assert reader.read() == b"secret dump"


def test_a_wrong_identity_is_a_clear_error(recipient) -> None:
    stored = encrypt(chunks(MiB), [recipient]).data
    stranger = pyrage.x25519.Identity.generate()
    reader = decrypting_reader(io.BytesIO(stored), [stranger])
    with reader, pytest.raises(DecryptionError, match="none of the configured identities can decrypt"):
        reader.read()


@pytest.mark.parametrize("damage", ["truncate", "flip", "not age"])
def test_damaged_data_fails_to_decrypt(identity, recipient, damage) -> None:
    stored = bytearray(encrypt(chunks(MiB), [recipient]).data)
    if damage == "truncate":
        stored = stored[: -AGE_CHUNK // 2]  # a cut-off upload must not pass as a shorter file
    elif damage == "flip":
        stored[len(stored) // 2] ^= 1
    else:
        stored = bytearray(b"(\xb5/\xfd" + bytes(1000))  # a zstd file, never encrypted
    reader = decrypting_reader(io.BytesIO(bytes(stored)), [identity])
    with reader, pytest.raises(DecryptionError) as caught:
        while reader.read(AGE_CHUNK):
            pass
    expected = "not an age-encrypted file" if damage == "not age" else "damaged or truncated"
    assert expected in str(caught.value)


def test_a_failing_sink_fails_the_write_and_stops_the_worker(recipient) -> None:
    class Full:
        def __init__(self) -> None:
            self.written = 0

        def write(self, data: bytes) -> int:
            self.written += len(data)
            if self.written > 2 * MiB:
                raise OSError("disk full")
            return len(data)

    encryptor = Encryptor(Full(), [recipient], limit=256 * 1024)
    with pytest.raises(OSError, match="disk full"):
        for chunk in chunks(16 * MiB):
            encryptor.write(chunk)
    assert not encryptor._thread.is_alive()
    with pytest.raises(EncryptionError, match="after close or abort"):
        encryptor.write(b"more")
    encryptor.abort()  # idempotent


def test_abort_stops_the_worker_and_writes_nothing_more(recipient) -> None:
    sink = Recorder()
    encryptor = Encryptor(sink, [recipient])
    encryptor.write(b"x" * MiB)
    encryptor.abort()
    written = len(sink.data)
    assert not encryptor._thread.is_alive()
    encryptor.abort()
    assert len(sink.data) == written


def test_closing_a_reader_early_stops_its_worker(identity, recipient) -> None:
    stored = encrypt(chunks(8 * MiB), [recipient]).data
    before = threading.active_count()
    reader = decrypting_reader(io.BytesIO(stored), [identity], limit=128 * 1024)
    assert reader.read(10)
    reader.close()
    assert threading.active_count() == before


# -- keys -----------------------------------------------------------------------------------------


def ssh_keypair(tmp_path: Path) -> tuple[str, Path]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private = tmp_path / "id_ed25519"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    return public.decode() + " backups@control", private


def test_ssh_ed25519_recipients_and_identities(tmp_path) -> None:
    public, private = ssh_keypair(tmp_path)
    stored = encrypt([b"via ssh key"], load_recipients([public])).data
    with decrypting_reader(io.BytesIO(stored), [private]) as reader:
        assert reader.read() == b"via ssh key"


def test_identity_files_as_age_keygen_writes_them(tmp_path, identity, recipient) -> None:
    path = tmp_path / "key.txt"
    path.write_text(
        "# created: 2026-11-22T03:15:00Z\n"
        f"# public key: {recipient}\n"
        f"{identity}\n\n"
        f"{pyrage.x25519.Identity.generate()}\n"
    )
    assert len(load_identities(path)) == 2
    stored = encrypt([b"dump"], [recipient]).data
    for given in (path, str(path), str(identity)):
        with decrypting_reader(io.BytesIO(stored), [given]) as reader:
            assert reader.read() == b"dump"


def test_identity_file_errors_never_show_the_secret(tmp_path, identity) -> None:
    secret = str(identity)
    broken = tmp_path / "broken.txt"
    broken.write_text(f"# comment\n{secret[:-3]}xyz\n")
    with pytest.raises(EncryptionError, match=r"line 2: not an age identity") as caught:
        load_identities(broken)
    assert secret[20:-3] not in str(caught.value)
    with pytest.raises(EncryptionError, match="does not exist"):
        load_identities(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(EncryptionError, match="holds no identity"):
        load_identities(empty)


def test_recipient_errors_say_what_is_accepted(identity, recipient) -> None:
    assert len(load_recipients([recipient, f"  {recipient}\n"])) == 2
    with pytest.raises(EncryptionError, match="invalid recipient 'age1qqqq'"):
        parse_recipient("age1qqqq")
    with pytest.raises(EncryptionError, match=r"unsupported recipient 'gpg:ABCDEF'.*age1"):
        parse_recipient("gpg:ABCDEF")
    with pytest.raises(EncryptionError, match="at least one recipient"):
        load_recipients([])
    with pytest.raises(EncryptionError, match="secret key") as caught:
        parse_recipient(str(identity))
    assert str(identity)[15:] not in str(caught.value)


def test_fingerprints_are_stable_and_ignore_ssh_comments(tmp_path, recipient) -> None:
    public, _private = ssh_keypair(tmp_path)
    assert recipient_fingerprint(recipient) == recipient_fingerprint(f" {recipient}\n")
    assert recipient_fingerprint(recipient).startswith("age:") and len(recipient_fingerprint(recipient)) == 20
    bare = " ".join(public.split()[:2])
    assert recipient_fingerprint(public) == recipient_fingerprint(bare + " other@comment")
    assert recipient_fingerprint(public).startswith("ssh:")
    assert recipient not in recipient_fingerprint(recipient)


# -- the `encryption` variable --------------------------------------------------------------------


def test_encryption_variable(tmp_path, recipient) -> None:
    assert encryption_from_vars(None, tmp_path) is None
    settings = encryption_from_vars({"recipients": [recipient], "identity_file": "keys/age.txt"}, tmp_path)
    assert settings is not None
    assert settings.recipients == (recipient,)
    assert settings.identity_file == tmp_path / "keys" / "age.txt"
    assert settings.fingerprints == [recipient_fingerprint(recipient)]
    only_recipients = encryption_from_vars({"recipients": [recipient]}, tmp_path)
    assert only_recipients is not None and only_recipients.identity_file is None
    with pytest.raises(EncryptionError, match="identity_file is not set"):
        only_recipients.load_identities()


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"recipients": ["age1nope"]}, "encryption.recipients[0]", "invalid recipient"),
        ({"recipients": []}, "encryption.recipients", "at least 1 item"),
        ({}, "encryption.recipients", "missing"),
        ({"recipient": ["x"]}, "encryption.recipient", "did you mean 'recipients'"),
        (["age1..."], "encryption", "must be a mapping"),
    ],
)
def test_encryption_variable_problems(tmp_path, value, path, message) -> None:
    with pytest.raises(InvalidInput) as caught:
        encryption_from_vars(value, tmp_path)
    assert any(p.path == path and message in p.message for p in caught.value.problems), caught.value


# -- verify ---------------------------------------------------------------------------------------


def stored_artifact(target: LocalTarget, name: str, plain: bytes, recipient: str) -> Artifact:
    key = snapshot_key("shop", "production", "20261122T031500Z", name)
    with FanOut([target.open_writer(key)]) as fan:
        encrypt([zstandard.ZstdCompressor().compress(plain)], [recipient], sink=fan)
        fan.commit()
    return Artifact(name, key, fan.size, fan.sha256, "zstd", "age", "test")


def tar_bytes() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = os.urandom(300_000)
        info = tarfile.TarInfo("pub/media/a.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_verify_decrypts_and_runs_the_full_checks(tmp_path, identity, recipient) -> None:
    target = LocalTarget("local", tmp_path / "snapshots")
    dump = b"CREATE TABLE `t` (id int);\n" * 5000 + b"-- Dump completed on 2026-11-22  3:15:00\n"
    db = stored_artifact(target, "db.sql.zst.age", dump, recipient)
    files = stored_artifact(target, "files.tar.zst.age", tar_bytes(), recipient)

    for artifact, content in ((db, "dump_trailer"), (files, "tar_listing")):
        check = verify_artifact(target, artifact, [identity])
        assert check.ok, check.message
        passed = {"decompress": True, content: True, "decrypt": True, "size": True, "sha256": True}
        assert check.checks == passed

        blind = verify_artifact(target, artifact)
        assert blind.ok and blind.checks == {"size": True, "sha256": True}
        assert "no identity" in blind.message and "only size and sha256" in blind.message

        wrong = verify_artifact(target, artifact, [pyrage.x25519.Identity.generate()])
        assert not wrong.ok and wrong.checks["decrypt"] is False
        assert "none of the configured identities" in wrong.message
        assert wrong.checks["sha256"]  # the stored bytes are fine; the key is not


def test_verify_catches_a_dump_without_trailer_inside_the_encryption(tmp_path, identity, recipient) -> None:
    target = LocalTarget("local", tmp_path / "snapshots")
    artifact = stored_artifact(target, "db.sql.zst.age", b"CREATE TABLE `t` (id int);\n", recipient)
    check = verify_artifact(target, artifact, [identity])
    assert not check.ok and check.checks["dump_trailer"] is False and check.checks["decrypt"] is True
