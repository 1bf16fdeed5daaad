"""``integrity``: the per-file SHA-256 list of a site's code folders, for the integrity watch.

Why a list of hashes, computed on the host: an injected PHP file is the classic compromise of a
shop; the watch (``maintkit.cli.integritywatch``) compares this list with the previous one and
warns about files added, changed or removed outside an update run. The host sends only paths and
hashes (never the files); media and caches are left out (they change every day by design).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult
from maintkit.sources.script import host_path

#: what changes by design: uploaded media, caches, generated code, logs, sessions
DEFAULT_EXCLUDE = [
    "./pub/media/*",
    "./pub/static/*",
    "./var/*",
    "./generated/*",
    "./wp-content/uploads/*",
    "./wp-content/cache/*",
    "./img/*",
    "./cache/*",
    "./.git/*",
    "./.maintkit*",
]
LINE = re.compile(r"^([0-9a-f]{64})  \./(.+)$")


class IntegrityParams(ActionParams):
    root: str = Field(description="The site's root on the host (the paths in the list are relative to it).")
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="find -path patterns (from ./) left out: media, caches, generated files.",
    )


def integrity_command(p: IntegrityParams) -> str:
    """``find`` every regular file but the excluded ones, sorted, then ``sha256sum`` them (NUL-safe)."""
    prune = " ".join(f"! -path {shlex.quote(pattern)}" for pattern in p.exclude)
    return (
        f"cd {host_path(p.root)} && find . -type f {prune} -print0 | LC_ALL=C sort -z "
        "| xargs -0 -r sha256sum --"
    )


def parse_hashes(text: str) -> dict[str, str]:
    """``sha256sum`` output -> relative path -> hash (names with a newline are left out: escaped)."""
    files = {}
    for line in text.splitlines():
        found = LINE.match(line)
        if found:
            files[found.group(2)] = found.group(1)
    return files


class Integrity(Action):
    name = "integrity"
    summary = (
        "Record the SHA-256 of every code file of a site (media and caches left out): the integrity watch."
    )
    Params = IntegrityParams
    shorthand = "root"
    idempotent = True  # it only reads

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        return False

    def plan(self, params: IntegrityParams, ctx: StepContext) -> list[str]:
        return [integrity_command(params)]

    def run(self, params: IntegrityParams, ctx: StepContext) -> ActionResult:
        result = ctx.run(integrity_command(params))
        if result.rc != 0:
            return ActionResult(failed=True, rc=result.rc, stderr=result.stderr, msg="the hash list failed")
        files = parse_hashes(result.stdout)
        return ActionResult(
            changed=False,
            rc=0,
            msg=f"{len(files)} files hashed",
            data={"root": params.root, "files": files, "count": len(files)},
        )
