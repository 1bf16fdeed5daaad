"""The ``storage:`` and ``retention:`` inventory vars: targets built, every mistake reported at once."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from maintkit.model.problems import InvalidInput
from maintkit.storage.base import Target
from maintkit.storage.config import retention_from_vars, targets_from_vars
from maintkit.storage.local import LocalTarget
from maintkit.storage.registry import TARGET_TYPES
from maintkit.storage.retention import RetentionPolicy
from maintkit.storage.s3 import ObjectLock, S3Target
from maintkit.storage.settings import TargetSettings
from maintkit.text.yamlload import parse_yaml


def problems(value: Any, base_dir: Path = Path("/inv")) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        targets_from_vars(value, base_dir)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def test_default_is_one_local_folder_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [target] = targets_from_vars(None, "/somewhere/else")
    assert isinstance(target, LocalTarget)
    assert target.name == "local"
    assert target.root == tmp_path / ".maintkit" / "snapshots"


def test_local_and_s3_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    local, home, offsite = targets_from_vars(
        [
            {"name": "here", "type": "local", "path": "backups"},
            {"name": "home", "type": "local", "path": "~/snaps"},
            {
                "name": "offsite",
                "type": "s3",
                "bucket": "shop-backups",
                "prefix": "/maintkit/",
                "region": "eu-west-3",
                "endpoint_url": "https://s3.example.net",
                "profile": "backups",
                "storage_class": "STANDARD_IA",
                "sse": "aws:kms",
                "sse_kms_key_id": "alias/backups",
                "object_lock": {"mode": "COMPLIANCE", "days": 30},
                "part_size_mib": 16,
            },
        ],
        tmp_path / "inventories",
    )
    assert isinstance(local, LocalTarget) and local.root == tmp_path / "inventories" / "backups"
    assert isinstance(home, LocalTarget) and home.root == tmp_path / "snaps"
    assert isinstance(offsite, S3Target)
    assert (offsite.name, offsite.bucket, offsite.prefix) == ("offsite", "shop-backups", "maintkit/")
    assert (offsite.region, offsite.endpoint_url, offsite.profile) == (
        "eu-west-3",
        "https://s3.example.net",
        "backups",
    )
    assert (offsite.storage_class, offsite.sse, offsite.sse_kms_key_id) == (
        "STANDARD_IA",
        "aws:kms",
        "alias/backups",
    )
    assert offsite.object_lock == ObjectLock("COMPLIANCE", 30)
    assert offsite.part_size == 16 * 2**20
    assert offsite.describe() == "s3://shop-backups/maintkit/ at https://s3.example.net"


def test_a_single_mapping_is_accepted_and_named_after_its_type() -> None:
    [target] = targets_from_vars({"type": "s3", "bucket": "shop-backups"}, "/inv")
    assert isinstance(target, S3Target)
    assert target.name == "s3"
    assert target.prefix == ""


@pytest.mark.parametrize(
    "key", ["aws_access_key_id", "aws_secret_access_key", "access_key", "secret_key", "AWS-Session-Token"]
)
def test_credential_keys_are_rejected_with_where_credentials_go(key: str) -> None:
    [message] = problems([{"name": "s3", "type": "s3", "bucket": "shop-backups", key: "AKIAEXAMPLE"}])
    assert message.startswith(f"storage[0].{key}: '{key}': credentials do not belong in the inventory")
    assert "AWS chain" in message and "`profile`" in message
    assert "AKIAEXAMPLE" not in message


def test_unknown_keys_get_a_did_you_mean() -> None:
    assert problems(
        [{"type": "local", "path": "/b"}, {"type": "s3", "bucket": "bkt", "regoin": "eu-west-3"}]
    ) == ["storage[1].regoin: unknown key 'regoin' (did you mean 'region'?)"]
    [message] = problems({"type": "local", "path": "/b", "colour": "blue"})
    assert message == "storage.colour: unknown key 'colour'; a local target takes name, type, path"


def test_unknown_and_missing_types() -> None:
    assert problems([{"type": "S3", "bucket": "x"}, {"name": "x"}, {"type": "locl"}, {"type": "ftp"}]) == [
        "storage[0].type: unknown storage type 'S3' (did you mean 's3'?); types: local, s3",
        "storage[1]: missing 'type' (local or s3)",
        "storage[2].type: unknown storage type 'locl' (did you mean 'local'?); types: local, s3",
        "storage[3].type: unknown storage type 'ftp'; types: local, s3",
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        [
            {"name": "a", "type": "s3"},
            {
                "name": "b",
                "type": "s3",
                "bucket": "bkt",
                "sse": "DES",
                "object_lock": {"mode": "STRICT", "days": 0},
            },
            {"name": "c", "type": "s3", "bucket": "bkt", "sse_kms_key_id": "k"},
            {"name": "has space", "type": "local", "path": "/x"},
            "just a string",
        ]
    )
    assert found == [
        "storage[0].bucket: missing",
        "storage[1].sse: Input should be 'AES256' or 'aws:kms'",
        "storage[1].object_lock.mode: Input should be 'GOVERNANCE' or 'COMPLIANCE'",
        "storage[1].object_lock.days: Input should be greater than or equal to 1",
        "storage[2]: sse_kms_key_id needs sse: aws:kms",
        "storage[3].name: a name is letters, digits, '.', '_' and '-', starting with a letter or digit",
        "storage[4]: a storage target must be a mapping with name and type, not a string",
    ]


def test_duplicate_names_are_an_error() -> None:
    assert problems([{"type": "s3", "bucket": "one"}, {"type": "s3", "bucket": "two"}]) == [
        "storage[1].name: duplicate storage target name 's3' (targets need distinct names; "
        "an unnamed target is called after its type)"
    ]


@pytest.mark.parametrize("value", ["s3://bucket", 42])
def test_storage_must_be_a_list_or_mapping(value: Any) -> None:
    [message] = problems(value)
    assert message.startswith("storage: must be a list of storage targets")


def test_an_empty_storage_list_is_an_error_not_the_default() -> None:
    assert problems([]) == [
        "storage: is empty: name at least one storage target, or leave `storage` out for the default"
    ]


def test_problems_point_at_the_inventory_line() -> None:
    text = "storage:\n  - name: offsite\n    type: s3\n    bucket: shop-backups\n    secret_key: x\n"
    data = parse_yaml(text, "inventories/production.yml")
    with pytest.raises(InvalidInput) as caught:
        targets_from_vars(data["storage"], "/inv", file="inventories/production.yml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.column, problem.path) == (
        "inventories/production.yml",
        5,
        5,
        "storage[0].secret_key",
    )


def test_retention_from_vars() -> None:
    assert retention_from_vars(None) == RetentionPolicy()
    assert retention_from_vars({"keep_daily": 7, "keep_weekly": 4}) == RetentionPolicy(
        keep_daily=7, keep_weekly=4
    )
    with pytest.raises(InvalidInput) as caught:
        retention_from_vars({"keep_dialy": 7, "keep_weekly": -1})
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "retention.keep_dialy: unknown rule 'keep_dialy' (did you mean 'keep_daily'?)",
        "retention.keep_weekly: Input should be greater than or equal to 0",
    ]


def test_importing_storage_does_not_import_boto3() -> None:
    """``maintkit --help`` must stay fast: boto3 is imported when an S3 target first talks to S3."""
    code = (
        "import sys, maintkit.storage, maintkit.storage.config, maintkit.storage.s3, "
        "maintkit.storage.manifest, maintkit.storage.retention, maintkit.cli\n"
        "from maintkit.storage.config import targets_from_vars\n"
        "targets_from_vars([{'type': 's3', 'bucket': 'bkt'}], '.')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _MemorySettings(TargetSettings):
    """A target kind that exists only in this test: registered by one entry, nothing else edited."""

    KIND: ClassVar[str] = "memory"
    name: str = "memory"
    type: Literal["memory"]
    path: str = "/nowhere"

    def build(self, base_dir: Path) -> Target:
        return LocalTarget(self.name, base_dir / "memory")


def test_a_registered_target_kind_is_checked_named_and_built_with_no_other_edit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(TARGET_TYPES, "memory", lambda: _MemorySettings)
    [target] = targets_from_vars({"type": "memory"}, tmp_path)
    assert isinstance(target, LocalTarget)
    assert (target.name, target.root) == ("memory", tmp_path / "memory")
    with pytest.raises(InvalidInput) as error:
        targets_from_vars([{"type": "memroy"}, {"name": "x"}, {"type": "memory", "colour": "red"}], tmp_path)
    messages = [p.message for p in error.value.problems]
    assert "unknown storage type 'memroy' (did you mean 'memory'?); types: local, s3, memory" in messages
    assert "missing 'type' (local or s3 or memory)" in messages
    assert any(m.startswith("unknown key 'colour'; a memory target takes") for m in messages)


def test_every_registered_kind_declares_its_type_value() -> None:
    for kind, load in TARGET_TYPES.items():
        settings = load()
        assert kind == settings.KIND
        assert typing.get_args(settings.model_fields["type"].annotation) == (kind,)


def test_checking_local_storage_settings_does_not_load_the_s3_target() -> None:
    code = (
        "import sys\n"
        "from maintkit.storage.config import targets_from_vars\n"
        "targets_from_vars([{'type': 'local', 'path': '/tmp/x'}], '/')\n"
        "print('maintkit.storage.s3' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
