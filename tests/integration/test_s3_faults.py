"""S3 failing mid-upload: exit 1 with one clear message, no traceback, no debris in any target.

A real moto S3 server behind a small HTTP-aware proxy on 127.0.0.1 that answers the multipart
``UploadPart`` requests with 500s and then stops listening (connection refused), as a store going down
does; the real CLI on a local-connection inventory with a real MariaDB dump and a local target beside
the S3 one. What is left is read from the moto server directly (ListObjects, ListMultipartUploads).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import events, run_cli, write_playbook
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, mariadb_fixture
from tests.s3server import MotoServer, cut, pump_down, use_fake_aws_credentials

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module")

UPLOAD_PART = re.compile(rb"PUT /[^ \r\n]*[?&]partNumber=")
ERROR_BODY = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
ANSWER_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
    + f"Content-Length: {len(ERROR_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + ERROR_BODY
)


class PartFaults:
    """A proxy to moto on a fixed 127.0.0.1 port. ``failing``: every UploadPart request gets a 500;
    after ``refuse_after`` such answers the port is closed (connection refused) until :meth:`recover`.
    Other requests pass, unless the port is closed."""

    def __init__(self, upstream_port: int, *, refuse_after: int | None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.refuse_after = refuse_after
        self.failing = True
        self.answered_500 = 0
        self.refused = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._serve()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        listener = self._listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def recover(self) -> None:
        """Listen again on the same port; let everything through."""
        self.failing = False
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.refused.clear()
        self._serve()

    def close(self) -> None:
        self.refused.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.05)
        while listener is self._listener and not self.refused.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            cut(client)
            return
        threading.Thread(target=pump_down, args=(server, client), daemon=True).start()
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if self.failing and UPLOAD_PART.search(data):
                    with contextlib.suppress(OSError):
                        client.sendall(ANSWER_500)
                    with self._lock:
                        self.answered_500 += 1
                        if self.refuse_after is not None and self.answered_500 >= self.refuse_after:
                            self.close()  # from now on: connection refused
                    break
                server.sendall(data)
        except OSError:
            pass
        cut(client)
        cut(server)


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    use_fake_aws_credentials(monkeypatch, tmp_path)  # the CLI subprocesses inherit them
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's retries, kept short
    name = f"mk-{uuid.uuid4().hex[:12]}"
    s3(moto_server).create_bucket(Bucket=name)
    return name


def s3(moto_server: MotoServer) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


def setup_site(work: Path, mariadb: Any, bucket: str, endpoint_url: str) -> Path:
    """A local-connection site with a database, 12 MiB of files (two S3 parts), two targets."""
    site = work / "site"
    site.mkdir()
    (site / "index.php").write_text("<?php echo 'shop';\n")
    (site / "media.bin").write_bytes(os.urandom(12 * 1024 * 1024))  # does not compress: multipart
    creds = mariadb.tcp()
    inventory = {
        "all": {
            "hosts": {
                "shop": {
                    "connection": "local",
                    "lock_dir": str(work / "lock"),
                    "database": {
                        "name": SHOP_DB,
                        "user": SHOP_USER,
                        "password": SHOP_PASSWORD,
                        "host": "127.0.0.1",
                        "port": creds.port,
                    },
                    "files": {"root": str(site)},
                    "storage": [
                        {"name": "local", "type": "local", "path": str(work / "backups")},
                        {
                            "name": "offsite",
                            "type": "s3",
                            "bucket": bucket,
                            "region": "us-east-1",
                            "endpoint_url": endpoint_url,
                            "part_size_mib": 8,
                        },
                    ],
                }
            }
        }
    }
    path = work / "inv.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def snapshot(work: Path, inventory: Path) -> Any:
    book = write_playbook(
        work,
        {"name": "snap", "steps": [{"snapshot": {"database": "{{ database }}", "files": "{{ files }}"}}]},
    )
    return run_cli("run", book, "-i", inventory, "--journal-dir", work / "journal", cwd=work, timeout=180)


def leftovers(moto_server: MotoServer, bucket: str, work: Path) -> dict[str, list[str]]:
    client = s3(moto_server)
    local = work / "backups"
    return {
        "objects": [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])],
        "uploads": [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])],
        "local": sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
        if local.exists()
        else [],
    }


def assert_one_clear_failure(result: Any) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "storage target 'offsite'" in result.stdout
    assert result.stderr == ""  # the one message is the step's; nothing repeated on stderr


def test_s3_answering_500s_to_parts_fails_the_snapshot_and_leaves_nothing_anywhere(
    tmp_path, mariadb, moto_server, bucket
):
    proxy = PartFaults(moto_server.port, refuse_after=None)
    try:
        inventory = setup_site(tmp_path, mariadb, bucket, proxy.endpoint_url)
        result = snapshot(tmp_path, inventory)
    finally:
        proxy.close()
    assert proxy.answered_500 >= 1, result.stdout + result.stderr
    assert_one_clear_failure(result)
    assert "nothing was kept in any target" in result.stdout
    # the dump went through to both targets before the files failed: it is gone from both
    assert leftovers(moto_server, bucket, tmp_path) == {"objects": [], "uploads": [], "local": []}


def test_s3_failing_then_refusing_leaves_no_traceback_and_the_next_snapshot_removes_the_debris(
    tmp_path, mariadb, moto_server, bucket
):
    proxy = PartFaults(moto_server.port, refuse_after=2)
    try:
        inventory = setup_site(tmp_path, mariadb, bucket, proxy.endpoint_url)
        failed = snapshot(tmp_path, inventory)
        assert proxy.refused.is_set()
        assert_one_clear_failure(failed)
        left = leftovers(moto_server, bucket, tmp_path)
        assert left["local"] == []  # the local target never keeps an artifact the other lost
        # the store was unreachable while cleaning up: what it still holds is named, and unfinished
        assert "the next snapshot of this site removes it" in failed.stdout
        proxy.recover()
        # The sweep removes snapshots older than the run's id (one-second resolution); a retry in the
        # very second of the failure would leave the debris to the snapshot after it.
        time.sleep(1.1)
        retried = snapshot(tmp_path, inventory)
    finally:
        proxy.close()
    assert retried.returncode == 0, retried.stdout + retried.stderr
    left = leftovers(moto_server, bucket, tmp_path)
    assert left["uploads"] == []
    ids = {key.split("/")[2] for key in left["objects"]}
    assert len(ids) == 1  # only the new, complete snapshot
    assert sorted(key.split("/")[3] for key in left["objects"]) == [
        "db.sql.zst",
        "files.tar.zst",
        "manifest.json",
    ]
    removed = [e for e in events(tmp_path / "journal") if e["event"] == "debris_removed"]
    assert removed and removed[0]["removed"]


def test_prune_aborts_incomplete_uploads_older_than_a_day_and_leaves_younger_ones(moto_server, bucket):
    from datetime import UTC, datetime, timedelta

    from maintkit.storage.base import new_snapshot_id
    from maintkit.storage.operations import prune_target
    from maintkit.storage.retention import RetentionPolicy
    from maintkit.storage.s3 import S3Target

    client = s3(moto_server)
    snapshot_id = new_snapshot_id(datetime.now(UTC))  # a snapshot that began now
    client.create_multipart_upload(Bucket=bucket, Key=f"shop/prod/{snapshot_id}/files.tar.zst")
    client.create_multipart_upload(Bucket=bucket, Key=f"other/prod/{snapshot_id}/files.tar.zst")
    target = S3Target("offsite", bucket, region="us-east-1", endpoint_url=moto_server.endpoint_url)
    policy = RetentionPolicy(keep_last=1)

    prune_target(target, "shop", "prod", policy)  # the upload may be a snapshot being written: kept
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 2

    prune_target(target, "shop", "prod", policy, now=datetime.now(UTC) + timedelta(hours=25))
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [f"other/prod/{snapshot_id}/files.tar.zst"]  # another site's is not ours to touch
