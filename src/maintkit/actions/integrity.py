"""``integrity``: the per-file SHA-256 list of a site's code folders, for the integrity watch.

Why a list of hashes, computed on the host: an injected PHP file is the classic compromise of a
shop; the watch (``maintkit.cli.integritywatch``) compares this list with the previous one and
warns about files added, changed or removed outside an update run. The host sends only paths and
hashes (never the files); media and caches are left out (they change every day by design).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult
from maintkit.sources.codehashes import DEFAULT_EXCLUDE, ListSink, hash_list_command, parse_hashes

__all__ = ["DEFAULT_EXCLUDE", "Integrity", "IntegrityParams", "integrity_command", "parse_hashes"]


class IntegrityParams(ActionParams):
    root: str = Field(description="The site's root on the host (the paths in the list are relative to it).")
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="find -path patterns (from ./) left out: media, caches, generated files.",
    )


def integrity_command(p: IntegrityParams) -> str:
    """``find`` every regular file but the excluded ones, sorted, then ``sha256sum`` them (NUL-safe)."""
    return hash_list_command(p.root, p.exclude)


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
        sink = ListSink()  # a result keeps only a tail of stdout: the whole list goes through a sink
        result = ctx.run(integrity_command(params), stdout=sink)
        if result.rc != 0 or sink.truncated:
            return ActionResult(failed=True, rc=result.rc, stderr=result.stderr, msg="the hash list failed")
        files = parse_hashes(sink.text())
        return ActionResult(
            changed=False,
            rc=0,
            msg=f"{len(files)} files hashed",
            data={"root": params.root, "files": files, "count": len(files)},
        )
