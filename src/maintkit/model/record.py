"""One way to version the JSON records maintkit leaves on hosts and in storage.

Records outlive the maintkit that wrote them: snapshot manifests and verifications in a bucket, the
release history in a site root, promotable records beside the snapshots. Each kind names its version
field (kept as it is on disk: ``format_version`` for manifests, ``format`` for the others), writes
it first, and a reader refuses a version newer than the one it knows with a clear message instead
of guessing what changed; fields it does not know within its version are ignored (additions are
backwards compatible; a change of meaning bumps the version). :func:`type_problems` checks the JSON
types of a dataclass's fields, for the records that have no parsing library behind them.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class RecordFormat:
    """How one kind of record is versioned: ``key`` holds ``version``; ``missing`` is the version of
    records written before the key existed (None: the key is required)."""

    what: str  # for messages: "manifest.json", "the release history"
    key: str = "format"
    version: int = 1
    missing: int | None = None

    def dump(self, document: Mapping[str, Any]) -> bytes:
        """The record as stored: the version first, two-space indents, UTF-8, a final newline."""
        data = {self.key: self.version, **{k: v for k, v in document.items() if k != self.key}}
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def load(self, data: bytes | str, error: type[Exception], where: str | None = None) -> dict[str, Any]:
        """The JSON object of a stored record, its version checked; ``error`` is raised otherwise."""
        where = where or self.what
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise error(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise error(f"{where} is not a JSON object")
        version = raw.get(self.key, self.missing)
        if not isinstance(version, int) or isinstance(version, bool):
            raise error(f"{where} has no {self.key}")
        if version > self.version:
            raise error(
                f"{where} has format {version}, written by a newer maintkit (this one reads up to "
                f"{self.version}); upgrade maintkit"
            )
        return raw


def known_fields(cls: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``raw`` that are fields of the dataclass ``cls`` (the others are ignored)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


def type_problems(cls: type, raw: Mapping[str, Any]) -> list[str]:
    """``field: expected TYPE`` for each field of ``cls`` in ``raw`` whose JSON value has another type."""
    hints = typing.get_type_hints(cls)
    return [
        f"{name}: expected {_name(hints[name])}"
        for name, value in known_fields(cls, raw).items()
        if not _matches(value, hints[name])
    ]


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint) or (Any, Any)
        pairs = value.items() if isinstance(value, dict) else ()
        return isinstance(value, dict) and all(_matches(k, key) and _matches(v, item) for k, v in pairs)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    if hint is Any:
        return "any"
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else str(hint.__name__)
