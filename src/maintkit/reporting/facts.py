"""What a finished step left behind, in a line or two: the snapshot it made, what prune deleted.

Why: the journal records a snapshot's id, sizes and targets and prune's kept/deleted lists (the
step's ``data``), but the console said only "✓ take the snapshot"; the operator who must restore
tomorrow needs the id today, and a prune that deleted something should say what. The console and
``maintkit runs show`` (which replays the journal through the console) print these lines under the
step's line; ``-q`` prints none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: ids listed in a line before "+N more"
MAX_IDS = 8


def human_size(count: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def step_facts(event: Mapping[str, Any]) -> list[str]:
    """The fact lines of a ``step_end`` event (none for steps with nothing to say, or that failed)."""
    data = event.get("data")
    describe = _FACTS.get(str(event.get("action")))
    if describe is None or not isinstance(data, Mapping) or event.get("status") not in {"ok", "changed"}:
        return []
    return describe(data, str(event.get("msg") or ""))


def _snapshot(data: Mapping[str, Any], _msg: str) -> list[str]:
    if "snapshot_id" not in data:
        return []
    artifacts = data.get("artifacts") or {}
    sizes = ", ".join(f"{name} {human_size(a.get('size', 0))}" for name, a in artifacts.items())
    targets = ", ".join(data.get("targets") or {}) or "none"
    total = human_size(data.get("bytes") or 0)
    return [f"snapshot {data['snapshot_id']}: {total}" + (f" ({sizes})" if sizes else "") + f" in {targets}"]


def _prune(data: Mapping[str, Any], msg: str) -> list[str]:
    verb = "would delete" if msg.startswith("would") else "deleted"
    lines = []
    kept_all: Mapping[str, list[str]] = data.get("kept") or {}
    for target, pruned in (data.get("pruned") or {}).items():
        kept = kept_all.get(target) or []
        newest = f" (newest {max(kept)})" if kept else ""
        gone = f"{verb} {len(pruned)}: {_ids(pruned)}" if pruned else f"{verb} none"
        lines.append(f"prune {target}: {gone}; kept {len(kept)}{newest}")
    return lines


def _restore(data: Mapping[str, Any], _msg: str) -> list[str]:
    if not data.get("snapshot_id") or not data.get("storage_target"):
        return []
    size = f", {human_size(data['bytes'])} read" if data.get("bytes") else ""
    return [
        f"restored snapshot {data['snapshot_id']} of {data.get('site')}/{data.get('source_env')} "
        f"from target {data['storage_target']}{size}"
    ]


def _ids(ids: list[str]) -> str:
    shown = ", ".join(sorted(ids)[:MAX_IDS])
    return shown + (f" +{len(ids) - MAX_IDS} more" if len(ids) > MAX_IDS else "")


_FACTS: dict[str, Callable[[Mapping[str, Any], str], list[str]]] = {
    "snapshot": _snapshot,
    "prune": _prune,
    "restore": _restore,
}
