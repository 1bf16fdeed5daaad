"""What moved in a composer update: lock files compared, ``--dry-run`` output read.

Why compare locks rather than read composer's output: the lock is the contract (it is what
promotion installs on production), composer's console wording changes between versions, and a
lock diff also sees what ``composer require`` or a plugin changed. ``--dry-run`` output is read
only for ``--check``, where no lock is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from maintkit.model.problems import StepFailed


@dataclass(frozen=True)
class Move:
    """One package that changed: ``old`` None when installed, ``new`` None when removed."""

    package: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "install"
        if self.new is None:
            return "remove"
        return "update"

    def describe(self) -> str:
        return f"{self.package} {self.old or '(none)'} → {self.new or '(removed)'}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


def lock_versions(data: bytes | None, *, dev: bool = True) -> dict[str, str]:
    """Package name -> version of a composer.lock (or ``vendor/composer/installed.json``)."""
    if not data:
        return {}
    try:
        document = json.loads(data)
    except ValueError as error:
        raise StepFailed(f"not valid JSON: {error}") from error
    if isinstance(document, list):  # composer 1 installed.json
        packages: list[Any] = document
    else:
        packages = list(document.get("packages", []))
        if dev:
            packages += list(document.get("packages-dev", []))
    return {p["name"]: str(p.get("version", "")) for p in packages if isinstance(p, dict) and "name" in p}


def diff_versions(before: dict[str, str], after: dict[str, str]) -> list[Move]:
    """The packages whose version differs, sorted by name."""
    names = sorted(set(before) | set(after))
    return [Move(n, before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)]


_OPERATION = re.compile(
    r"^\s*-\s+(?P<verb>Upgrading|Downgrading|Installing|Removing|Locking|Updating)\s+(?P<name>\S+)\s+"
    r"\((?P<versions>[^)]*)\)"
)


def parse_dry_run(output: str) -> list[Move]:
    """The moves that ``composer update --dry-run`` (or install) announces, once per package.

    Lines look like ``  - Upgrading acme/banner (1.0.0 => 1.1.0)``, ``  - Installing a/b (1.0.0)``,
    ``  - Removing a/b (1.0.0)``; composer prints the lock operations and then the same operations
    for vendor/, so each package is kept once.
    """
    moves: dict[str, Move] = {}
    for line in output.splitlines():
        match = _OPERATION.match(line)
        if not match:
            continue
        name, verb, versions = match["name"], match["verb"], match["versions"]
        if "=>" in versions:
            old, new = (v.strip() for v in versions.split("=>", 1))
            moves[name] = Move(name, old, new)
        elif verb == "Removing":
            moves[name] = Move(name, versions.strip(), None)
        elif verb in ("Installing", "Locking"):
            moves.setdefault(name, Move(name, None, versions.strip().split(":")[0].strip()))
    return [moves[n] for n in sorted(moves)]
