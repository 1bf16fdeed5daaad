"""The S3 target against a real S3 endpoint (moto's server over HTTP on 127.0.0.1).

What is proven here, on the wire: a stream of unknown size goes through FanOut to S3 and a local
folder at once as a real multipart upload; aborting leaves neither an object nor an incomplete
multipart upload; Object Lock retention ends up on every object and a bucket without Object Lock
is refused before any upload; a connection cut in the middle of a part is retried by botocore,
and a part that keeps failing fails cleanly.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maintkit.storage.base import StorageError
from maintkit.storage.fanout import FanOut
from maintkit.storage.local import LocalTarget
from maintkit.storage.s3 import S3Target
from tests.s3server import FaultProxy, MotoServer, use_fake_aws_credentials

pytestmark = pytest.mark.integration

MiB = 2**20
CHUNK = 64 * 1024  # what the SSH transport hands to a sink


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials for this test only; the developer's ~/.aws is never read."""
    use_fake_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def s3(moto_server: MotoServer) -> Any:
    """A plain boto3 client, to look at the bucket behind the target's back."""
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


def new_bucket(s3: Any, *, object_lock: bool = False) -> str:
    name = f"mk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


def s3_target(endpoint_url: str, bucket: str, **options: Any) -> S3Target:
    return S3Target("offsite", bucket, region="us-east-1", endpoint_url=endpoint_url, **options)


def stream(sink: Any, size: int, seed: int = 1) -> str:
    """Write ``size`` pseudo-random bytes to ``sink`` in SSH-sized chunks; return their SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    left = size
    while left:
        chunk = rng.randbytes(min(CHUNK, left))
        digest.update(chunk)
        sink.write(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def sha256_of_reader(reader: Any) -> str:
    digest = hashlib.sha256()
    while block := reader.read(1 * MiB):
        digest.update(block)
    return digest.hexdigest()


def incomplete_uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


def object_keys(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_fanout_streams_40_mb_to_s3_and_a_local_folder_at_once(
    moto_server: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    remote = s3_target(moto_server.endpoint_url, bucket, prefix="backups")
    local = LocalTarget("local", tmp_path / "snapshots")
    key = "shop/production/20261122T031500Z/files.tar.zst"
    size = 40 * MiB
    with FanOut.open([remote, local], key) as fan:
        source_sha = stream(fan, size)
        fan.commit()

    assert (fan.size, fan.sha256) == (size, source_sha)
    head = s3.head_object(Bucket=bucket, Key=f"backups/{key}")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-5"), "a multipart upload of 5 parts of 8 MiB"
    assert incomplete_uploads(s3, bucket) == []
    with remote.open_reader(key) as reader:
        assert sha256_of_reader(reader) == source_sha
    with local.open_reader(key) as reader:
        assert sha256_of_reader(reader) == source_sha
    assert remote.size(key) == local.size(key) == size


def test_a_small_artifact_is_one_put(moto_server: MotoServer, s3: Any, bucket: str) -> None:
    target = s3_target(moto_server.endpoint_url, bucket)
    with target.open_writer("shop/prod/ID/db.sql.zst") as writer:
        writer.write(b"-- Dump completed\n")
        writer.commit()
    target.put_bytes("shop/prod/ID/manifest.json", b"{}")
    assert "-" not in s3.head_object(Bucket=bucket, Key="shop/prod/ID/db.sql.zst")["ETag"]
    assert target.get_bytes("shop/prod/ID/db.sql.zst") == b"-- Dump completed\n"
    assert target.get_bytes("shop/prod/ID/manifest.json") == b"{}"
    assert target.exists("shop/prod/ID/manifest.json")
    assert not target.exists("shop/prod/ID/nothing")
    with pytest.raises(StorageError, match="not found"):
        target.get_bytes("shop/prod/ID/nothing")


def test_abort_leaves_no_object_and_no_incomplete_upload(
    moto_server: MotoServer, s3: Any, bucket: str
) -> None:
    target = s3_target(moto_server.endpoint_url, bucket)
    writer = target.open_writer("shop/prod/ID/db.sql.zst")
    stream(writer, 20 * MiB)
    # the multipart upload has started (parts were sent): abort must undo it
    wait_for(lambda: incomplete_uploads(s3, bucket))
    writer.abort()
    writer.abort()
    assert object_keys(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []
    assert not target.exists("shop/prod/ID/db.sql.zst")
    with pytest.raises(StorageError):
        writer.write(b"more")


def test_fanout_abort_cleans_both_targets(
    moto_server: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    local = LocalTarget("local", tmp_path / "snapshots")
    remote = s3_target(moto_server.endpoint_url, bucket)
    with pytest.raises(RuntimeError), FanOut.open([remote, local], "k/db") as fan:
        stream(fan, 12 * MiB)
        raise RuntimeError("mysqldump exited 2")
    assert object_keys(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []
    assert not list((tmp_path / "snapshots").rglob("*.part"))


def test_fanout_open_is_all_or_nothing(moto_server: MotoServer, s3: Any, bucket: str) -> None:
    """The second target refuses (no Object Lock): the first one's upload thread is stopped."""
    good = s3_target(moto_server.endpoint_url, bucket)
    locked = s3_target(moto_server.endpoint_url, bucket, object_lock={"mode": "GOVERNANCE", "days": 1})
    with pytest.raises(StorageError, match="has no Object Lock configuration"):
        FanOut.open([good, locked], "k/db")
    assert not [t for t in threading.enumerate() if t.name.startswith("s3-upload")]
    assert object_keys(s3, bucket) == []


def test_object_lock_retention_is_set_on_every_object(moto_server: MotoServer, s3: Any) -> None:
    bucket = new_bucket(s3, object_lock=True)
    target = s3_target(moto_server.endpoint_url, bucket, object_lock={"mode": "GOVERNANCE", "days": 7})
    fallbacks: list[str] = []
    target.client().meta.events.register(
        "before-call.s3.PutObjectRetention",
        lambda params, **_: fallbacks.append(params["url_path"].split("?")[0]),
    )
    before = datetime.now(UTC)
    with target.open_writer("shop/prod/ID/db.sql.zst") as writer:  # multipart
        stream(writer, 20 * MiB)
        writer.commit()
    with target.open_writer("shop/prod/ID/files.tar.zst") as writer:  # one PUT
        writer.write(b"small")
        writer.commit()
    target.put_bytes("shop/prod/ID/manifest.json", b"{}")
    for name in ("db.sql.zst", "files.tar.zst", "manifest.json"):
        head = s3.head_object(Bucket=bucket, Key=f"shop/prod/ID/{name}", ChecksumMode="ENABLED")
        assert head["ObjectLockMode"] == "GOVERNANCE", name
        until = head["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=7) <= until <= datetime.now(UTC) + timedelta(days=7, seconds=2), name
        assert head.get("ChecksumSHA256"), (
            f"{name}: uploaded with a SHA-256 checksum, as Object Lock requires"
        )
    # single PUTs carried the lock headers; only the multipart object may have needed the explicit
    # PutObjectRetention (moto drops lock headers on CreateMultipartUpload; AWS keeps them)
    assert all(path.endswith("/shop/prod/ID/db.sql.zst") for path in fallbacks), fallbacks
    # the retention holds: a plain delete of that version is refused
    version = s3.head_object(Bucket=bucket, Key="shop/prod/ID/manifest.json")["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key="shop/prod/ID/manifest.json", VersionId=version)


def test_object_lock_on_a_bucket_without_it_fails_before_any_upload(
    moto_server: MotoServer, s3: Any, bucket: str
) -> None:
    target = s3_target(moto_server.endpoint_url, bucket, object_lock={"mode": "COMPLIANCE", "days": 30})
    message = (
        f"bucket {bucket} has no Object Lock configuration; create it with object lock enabled or "
        "remove object_lock from the storage target 'offsite'"
    )
    with pytest.raises(StorageError) as caught:
        target.open_writer("shop/prod/ID/db.sql.zst")
    assert str(caught.value) == message
    with pytest.raises(StorageError, match="has no Object Lock configuration"):
        target.put_bytes("shop/prod/ID/manifest.json", b"{}")
    with pytest.raises(StorageError, match="has no Object Lock configuration"):
        target.check()
    assert object_keys(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []


def test_a_missing_bucket_is_named(moto_server: MotoServer) -> None:
    target = s3_target(moto_server.endpoint_url, "mk-no-such-bucket")
    with pytest.raises(StorageError) as caught:
        target.open_writer("k/v")
    assert str(caught.value) == (
        f"storage target 'offsite': bucket mk-no-such-bucket does not exist at {moto_server.endpoint_url}"
    )


def test_missing_credentials_are_explained_without_secrets(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError) as caught:
        s3_target(moto_server.endpoint_url, bucket).check()
    message = str(caught.value)
    assert "no AWS credentials found" in message
    assert "standard AWS chain" in message and "profile" in message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(StorageError, match="AWS profile 'nobody' is not defined"):
        s3_target(moto_server.endpoint_url, bucket, profile="nobody").check()


def test_listing_and_deleting(moto_server: MotoServer, s3: Any, bucket: str) -> None:
    target = s3_target(moto_server.endpoint_url, bucket, prefix="p")
    keys = [
        "shop/prod/20261122T031500Z/db.sql.zst",
        "shop/prod/20261122T031500Z/manifest.json",
        "shop/prod/20261123T031500Z/db.sql.zst",
        "shop/staging/20261122T031500Z/db.sql.zst",
    ]
    for key in keys:
        target.put_bytes(key, key.encode())
    s3.put_object(Bucket=bucket, Key="outside/prefix", Body=b"not ours")
    # an upload a crash left unfinished under a snapshot being pruned
    s3.create_multipart_upload(Bucket=bucket, Key="p/shop/prod/20261122T031500Z/files.tar.zst")

    assert target.list_dir("") == ["shop"]
    assert target.list_dir("shop/") == ["prod", "staging"]
    assert target.list_dir("shop/prod") == ["20261122T031500Z", "20261123T031500Z"]
    listed = target.list_keys("shop/prod/")
    assert [(key, size) for key, size, _ in listed] == [(key, len(key)) for key in keys[:3]]
    assert all(modified.tzinfo is not None for _, _, modified in listed)

    assert target.delete_prefix("shop/prod/20261122T031500Z/") == 2
    assert target.list_dir("shop/prod/") == ["20261123T031500Z"]
    assert incomplete_uploads(s3, bucket) == []
    assert "outside/prefix" in object_keys(s3, bucket)
    with pytest.raises(ValueError, match="empty prefix"):
        target.delete_prefix("")


def test_a_connection_cut_mid_part_is_retried_by_botocore(
    moto_server: MotoServer, s3: Any, bucket: str
) -> None:
    """One connection is cut after 12 MiB have gone up, i.e. inside the body of a part: botocore
    retries that request (it has the part in memory), and the object is whole. Exactly one more
    connection is made than without the fault: the retry."""
    size = 24 * MiB  # 3 parts

    def upload(proxy: FaultProxy, key: str) -> str:
        target = s3_target(proxy.endpoint_url, bucket)
        with target.open_writer(key) as writer:
            sha = stream(writer, size)
            writer.commit()
        return sha

    with FaultProxy(moto_server.port) as clean:
        upload(clean, "baseline")
    with FaultProxy(moto_server.port, drop_once_after=12 * MiB) as faulty:
        sha = upload(faulty, "faulty")

    assert clean.drops == 0
    assert faulty.drops == 1
    assert faulty.connections == clean.connections + 1
    head = s3.head_object(Bucket=bucket, Key="faulty")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-3")
    assert sha256_of_reader(s3.get_object(Bucket=bucket, Key="faulty")["Body"]) == sha
    assert incomplete_uploads(s3, bucket) == []


def test_a_part_that_keeps_failing_fails_cleanly(
    moto_server: MotoServer, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part 2's connection is cut every time, 1 MiB into its body: botocore tries it
    AWS_MAX_ATTEMPTS (2) times, then the upload fails, boto3 aborts the multipart upload, and
    nothing is left: no object, no incomplete upload."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with FaultProxy(moto_server.port, drop_matching=b"partNumber=2", after=1 * MiB) as proxy:
        target = s3_target(proxy.endpoint_url, bucket)
        writer = target.open_writer("shop/prod/ID/db.sql.zst")
        with pytest.raises(
            StorageError, match=r"storage target 'offsite' .*uploading shop/prod/ID/db.sql.zst"
        ):
            stream(writer, 24 * MiB)
            writer.commit()
        writer.abort()
    assert proxy.drops == 2
    assert object_keys(s3, bucket) == []
    assert incomplete_uploads(s3, bucket) == []
