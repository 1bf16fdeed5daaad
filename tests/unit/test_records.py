"""The versioned-record base (model/record.py) and the three kinds of record that use it.

The files in tests/fixtures/records/ were written by maintkit before the base existed: what is on
hosts and in buckets today must load, and the manifest and the history must write the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from maintkit.model.problems import StepFailed
from maintkit.model.record import RecordFormat, type_problems
from maintkit.storage.manifest import Manifest, ManifestError, Verification
from maintkit.updates.promotable import Record
from maintkit.updates.releases import History

OLD = Path(__file__).parent.parent / "fixtures" / "records"


def test_an_old_manifest_and_verification_load_and_write_back_byte_for_byte() -> None:
    manifest = (OLD / "manifest.json").read_bytes()
    verification = (OLD / "verification.json").read_bytes()
    assert Manifest.from_json(manifest).to_json() == manifest
    assert Verification.from_json(verification).to_json() == verification


def test_an_old_release_history_loads_and_writes_back_byte_for_byte() -> None:
    data = (OLD / "releases.json").read_bytes()
    history = History.parse(data)
    assert history.current == "20261102T000000Z"
    assert [r.reason for r in history.releases] == [None, "ünïcode"]
    assert history.to_bytes() == data


def test_an_old_promotable_record_without_a_format_loads_and_is_written_with_format_1_first() -> None:
    data = (OLD / "record.json").read_bytes()
    assert "format" not in json.loads(data)
    record = Record.parse(data)
    assert (record.record_id, record.cms, record.files["composer.lock"]["size"]) == (
        "20261105T030012Z",
        "magento",
        10,
    )
    written = json.loads(record.to_bytes())
    assert next(iter(written)) == "format" and written["format"] == 1
    assert {k: v for k, v in written.items() if k != "format"} == json.loads(data)
    assert Record.parse(record.to_bytes()) == record


@pytest.mark.parametrize(
    ("load", "error"),
    [
        (lambda d: Manifest.from_json(d), ManifestError),
        (lambda d: History.parse(d), StepFailed),
        (lambda d: Record.parse(d), ValueError),
    ],
    ids=["manifest", "history", "promotable"],
)
def test_every_kind_refuses_a_version_from_a_newer_maintkit(load: Any, error: type[Exception]) -> None:
    name = {ManifestError: "manifest.json", StepFailed: "releases.json", ValueError: "record.json"}[error]
    raw = json.loads((OLD / name).read_bytes())
    key = "format_version" if name == "manifest.json" else "format"
    known = 2 if name == "manifest.json" else 1  # manifests: format 2 holds engine artifacts
    raw[key] = known + 1
    with pytest.raises(
        error, match=rf"has format {known + 1}, written by a newer maintkit .*reads up to {known}.*upgrade"
    ):
        load(json.dumps(raw).encode())


def test_a_promotable_record_with_a_wrongly_typed_field_is_refused_naming_it() -> None:
    raw = json.loads((OLD / "record.json").read_bytes())
    raw["files"] = ["composer.lock"]
    raw["release_id"] = 7
    with pytest.raises(ValueError, match=r"record.json is invalid: release_id: expected .*; files: expected"):
        Record.parse(json.dumps(raw).encode())


def test_a_promotable_record_missing_a_required_field_is_refused() -> None:
    raw = json.loads((OLD / "record.json").read_bytes())
    del raw["site"]
    with pytest.raises(ValueError, match=r"record\.json is incomplete"):
        Record.parse(json.dumps(raw).encode())


def test_a_manifest_without_format_version_is_refused() -> None:
    raw = json.loads((OLD / "manifest.json").read_bytes())
    del raw["format_version"]
    with pytest.raises(ManifestError, match="has no format_version"):
        Manifest.from_json(json.dumps(raw))


@dataclass
class _Sample:
    name: str
    count: int = 0
    ratio: float = 0.0
    tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None


def test_type_problems_follow_json_types_and_ignore_unknown_fields() -> None:
    fine = {"name": "a", "count": 1, "ratio": 2, "tags": ["x"], "extra": {"k": [1]}, "parent": None}
    fine["new"] = 1
    assert type_problems(_Sample, fine) == []
    bad = {"name": 1, "count": True, "ratio": "1", "tags": [1], "parent": 3}
    wrong = [p.split(":")[0] for p in type_problems(_Sample, bad)]
    assert wrong == ["name", "count", "ratio", "tags", "parent"]


def test_a_record_format_writes_its_version_first_and_reads_a_missing_one_as_told() -> None:
    fmt = RecordFormat("thing.json", key="format", version=3, missing=1)
    expected = '{\n  "format": 3,\n  "b": 1,\n  "a": "é"\n}\n'.encode()
    assert fmt.dump({"b": 1, "format": 9, "a": "é"}) == expected
    assert fmt.load(b'{"a": 1}', ValueError) == {"a": 1}
    with pytest.raises(ValueError, match=r"thing\.json is not a JSON object"):
        fmt.load(b"[1]", ValueError)
    with pytest.raises(ValueError, match=r"thing\.json is not valid JSON"):
        fmt.load(b"{", ValueError)
