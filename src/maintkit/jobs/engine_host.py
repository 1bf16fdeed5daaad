"""A usable restic on the host, for ``files_engine: restic`` (issue 16).

Why a check before the snapshot starts: restic runs on the host, where the files are; a missing or
too old restic found after the database dump is a failed night, found before it is a clear message.
Why 0.14: repository format 2 (compression) and ``restic copy`` of it start there, and it is what
Debian 12 ships. Installing restic on a host that lacks it (``files_engine_install``) is the host
side's work; this implementation only finds it.
"""

from __future__ import annotations

import re

from maintkit.jobs.context import HostContext
from maintkit.model.problems import MaintkitError

MINIMUM = (0, 14)
_VERSION = re.compile(r"restic (\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``restic 0.14.0 compiled with …`` -> (0, 14, 0); None when the text is no restic version."""
    match = _VERSION.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def ensure_engine(ctx: HostContext, *, install: str = "ship") -> str:
    """Return the command of a usable restic (≥ 0.14) on the host; raise MaintkitError otherwise."""
    result = ctx.run("command -v restic >/dev/null 2>&1 && restic version", timeout=60)
    version = parse_version(result.stdout) if result.rc == 0 else None
    if version is None:
        raise MaintkitError(
            f"{ctx.host.name} has no restic, needed by files_engine: restic (files_engine_install: "
            f"{install}); install restic 0.14 or later there, or use files_engine: tar"
        )
    if version[:2] < MINIMUM:
        shown = ".".join(map(str, version))
        raise MaintkitError(
            f"{ctx.host.name} has restic {shown}, files_engine: restic needs 0.14 or later "
            f"(files_engine_install: {install}); upgrade it, or use files_engine: tar"
        )
    return "restic"
