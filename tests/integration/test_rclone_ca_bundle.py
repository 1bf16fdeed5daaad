"""An S3 engine repository works on a control node that sets AWS_CA_BUNDLE (as many images do).

rclone 1.60's S3 backend refuses to start when the AWS SDK sees AWS_CA_BUNDLE ("unable to load
custom CA bundle ... unsupported transport"); boto3 is happy with it. maintkit gives rclone the same
bundle as RCLONE_CA_CERT and hides the variable from it (storage/engine.py). Real restic, real
rclone, moto's S3 server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import boto3
import pytest

from maintkit.storage.engine import location, repository_key
from maintkit.storage.restic import Repository, ensure_password_file
from maintkit.storage.s3 import S3Target
from tests.s3server import AWS_ENV_TO_CLEAR, FAKE_AWS_ENV, MotoServer

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.skipif(not shutil.which("restic") or not shutil.which("rclone"), reason="restic/rclone missing")
@pytest.mark.skipif(not Path(BUNDLE).is_file(), reason=f"no {BUNDLE} to name as the CA bundle")
def test_an_s3_repository_is_made_and_read_with_aws_ca_bundle_set(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CA_BUNDLE", BUNDLE)
    monkeypatch.setenv("RESTIC_CACHE_DIR", str(tmp_path / "cache"))
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket="cabundle"
    )
    target = S3Target(
        "offsite", "cabundle", prefix="mk", region="us-east-1", endpoint_url=moto_server.endpoint_url
    )
    where = location(target, repository_key("shop", "production"), remote="mkca")
    assert where.env["RCLONE_CA_CERT"] == BUNDLE and where.env["AWS_CA_BUNDLE"] == ""
    assert os.environ["AWS_CA_BUNDLE"] == BUNDLE  # boto3 (this process) keeps it
    repo = Repository(where.restic, ensure_password_file(tmp_path / "pw"), env=where.env, name="offsite")
    assert repo.init_if_missing() is True
    assert repo.exists()
    keys = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").list_objects_v2(
        Bucket="cabundle", Prefix="mk/shop/production/restic/"
    )
    assert any(item["Key"].endswith("/config") for item in keys.get("Contents", []))  # bytes in the bucket
