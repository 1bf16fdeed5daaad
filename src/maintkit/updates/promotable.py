"""Promotable records: what staging proved, stored beside the snapshots for production to install.

Layout in every storage target (DESIGN.md: "its composer.lock and smoke results are stored beside
the snapshots")::

    SITE/ENV/promotable/RECORD_ID/composer.lock
    SITE/ENV/promotable/RECORD_ID/composer.json
    SITE/ENV/promotable/RECORD_ID/record.json     written last: without it the record does not exist

Why in the storage target and not on the staging host or the control node: every engineer's
machine and every cron job read the same record, and production never needs to reach staging.
``promotable`` is not named like a snapshot id, so snapshot listing and retention never touch it.

A record is *eligible* for production when it exists, is younger than ``max_age``, and is newer
than the release production runs (a record older than production's release would move production
back in time; the record production already runs is refused as "already promoted").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from maintkit.model.problems import StepFailed
from maintkit.model.record import RecordFormat, known_fields, type_problems
from maintkit.storage.base import StorageError, Target, check_segment, snapshot_prefix
from maintkit.updates.hostio import sha256

FOLDER = "promotable"
RECORD = "record.json"
#: ``"format": 1`` first (an addition: records written before it have none and are format 1)
RECORD_FORMAT = RecordFormat(RECORD, key="format", version=1, missing=1)


def records_prefix(site: str, env: str) -> str:
    return f"{snapshot_prefix(site, env)}{FOLDER}/"


def record_key(site: str, env: str, record_id: str, name: str) -> str:
    return f"{records_prefix(site, env)}{check_segment(record_id, 'record id')}/{check_segment(name)}"


@dataclass
class Record:
    """What ``record.json`` holds."""

    record_id: str
    site: str
    env: str
    host: str
    created: str
    cms: str
    run_id: str
    release_id: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, size}
    versions: dict[str, Any] = field(default_factory=dict)  # WordPress/PrestaShop: what to apply
    moved: list[dict[str, Any]] = field(default_factory=list)
    smoke: list[dict[str, Any]] = field(default_factory=list)
    tool_version: str = ""

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created)

    def to_bytes(self) -> bytes:
        return RECORD_FORMAT.dump(asdict(self))

    @classmethod
    def parse(cls, data: bytes) -> Record:
        """The record in ``data``; ValueError when it is not one this maintkit can read."""
        raw = RECORD_FORMAT.load(data, ValueError)
        problems = type_problems(cls, raw)
        if problems:
            raise ValueError(f"{RECORD} is invalid: {'; '.join(problems)}")
        try:
            return cls(**known_fields(cls, raw))
        except TypeError as error:  # a required field is missing
            raise ValueError(f"{RECORD} is incomplete: {error}") from None


def write_record(targets: list[Target], record: Record, files: dict[str, bytes]) -> None:
    """Write the files, then ``record.json`` (last) to every target."""
    record.files = {name: {"sha256": sha256(data), "size": len(data)} for name, data in files.items()}
    for target in targets:
        for name, data in files.items():
            target.put_bytes(record_key(record.site, record.env, record.record_id, name), data)
        target.put_bytes(record_key(record.site, record.env, record.record_id, RECORD), record.to_bytes())


def latest_record(target: Target, site: str, env: str) -> Record | None:
    """The newest complete record of SITE/ENV in ``target`` (None when there is none)."""
    for record_id in sorted(target.list_dir(records_prefix(site, env)), reverse=True):
        key = record_key(site, env, record_id, RECORD)
        if target.exists(key):
            try:
                return Record.parse(target.get_bytes(key))
            except ValueError as error:
                raise StepFailed(
                    f"promotable record {record_id} in {target.name} is unreadable: {error}"
                ) from error
    return None


def read_record(target: Target, site: str, env: str, record_id: str) -> Record:
    key = record_key(site, env, record_id, RECORD)
    try:
        data = target.get_bytes(key)
    except StorageError as error:
        raise StepFailed(f"no promotable record {record_id} of {site}/{env} in {target.name}") from error
    try:
        return Record.parse(data)
    except ValueError as error:
        raise StepFailed(f"promotable record {record_id} in {target.name} is unreadable: {error}") from error


def read_file(target: Target, record: Record, name: str) -> bytes:
    """A file of the record, checked against the SHA-256 the record holds."""
    data = target.get_bytes(record_key(record.site, record.env, record.record_id, name))
    expected = record.files.get(name, {}).get("sha256")
    if expected != sha256(data):
        raise StepFailed(
            f"{name} of promotable record {record.record_id} does not match its SHA-256 ({target.name}): "
            "refusing to install it"
        )
    return data


def parse_age(value: str | float | int) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s`` or a number of seconds."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = value.strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text and text[-1] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError as error:
        raise ValueError(f"invalid age {value!r}: use a number of seconds or 7d, 12h, 30m, 45s") from error


@dataclass
class Production:
    """What production runs now, for the eligibility check."""

    release_id: str | None
    release_created: datetime | None
    promoted_from: str | None


def refusal(record: Record | None, production: Production, max_age: timedelta, now: datetime) -> str | None:
    """Why ``record`` may not be promoted onto ``production`` (None: it may)."""
    if record is None:
        return (
            "there is no promotable record: run the update on staging first (it records one when it succeeds)"
        )
    age = now - record.created_at
    if age > max_age:
        return (
            f"the promotable record {record.record_id} is stale: made {_human(age)} ago on {record.host}, "
            f"the limit is {_human(max_age)} (promote_max_age); update staging again"
        )
    if production.promoted_from == record.record_id:
        return (
            f"production already runs promotable record {record.record_id} (release {production.release_id})"
        )
    if production.release_created and record.created_at <= production.release_created:
        return (
            f"the promotable record {record.record_id} ({record.created}) is not newer than production's "
            f"release {production.release_id} ({production.release_created.isoformat()})"
        )
    return None


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


def now_utc() -> datetime:
    return datetime.now(UTC)
