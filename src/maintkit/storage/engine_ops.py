"""Verify and prune for snapshots whose files live in a restic repository (``files_engine: restic``).

Verify proves data, not only metadata: the engine snapshot tagged ``maintkit-ID`` with the
manifest's tree must be in the target's repository, and ``restic check --read-data`` reads every pack
of it and compares each with its hash. Why the whole repository: the night's tree shares its chunks
with every other night, so "this snapshot's data" is most of the repository anyway; the cost is one
full read of the repository per target (docs/snapshots.md says so). Damaged packs are named.

Prune keeps the same ``keep_*`` decisions as for tar snapshots (made on the manifests, in
:mod:`maintkit.storage.operations`); here the engine snapshots of the pruned ones are forgotten by
tag, and so is debris (engine snapshots tagged ``maintkit-ID`` whose snapshot has no manifest and is
older than 24 hours: a run that failed after its backup), then one ``restic prune`` frees the packs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from maintkit.model.problems import MaintkitError
from maintkit.storage.base import Target, parse_snapshot_id
from maintkit.storage.engine import TAG_PREFIX, engine_tag, existing_password, repository, repository_key
from maintkit.storage.manifest import Artifact, ArtifactCheck
from maintkit.storage.restic import ResticError, read_password
from maintkit.storage.resticread import RepositoryReader
from maintkit.storage.retention import UNFINISHED_GRACE

_WANTED_PACK = re.compile(r"want ([0-9a-f]{64})")
_NAMED_PACK = re.compile(r"pack ([0-9a-f]{8,64})", re.IGNORECASE)


def damaged_packs(output: str) -> list[str]:
    """The pack ids ``restic check --read-data`` reports as damaged, as their paths in the repository."""
    found = _WANTED_PACK.findall(output) + _NAMED_PACK.findall(output)
    return [f"data/{pack[:2]}/{pack}" for pack in dict.fromkeys(found)]


def verify_engine_artifact(target: Target, artifact: Artifact) -> ArtifactCheck:
    """Check an engine artifact in ``target``: its snapshot and tree there, every pack read back.

    Never raises for a bad repository: the check's message says what failed (damaged packs named).
    """
    check = ArtifactCheck(artifact.name, ok=False)
    site, env, _folder = artifact.key.split("/", 2)
    try:
        repo = repository(target, artifact.key, existing_password(site, env))
        found = repo.by_tag(artifact.engine_tag)
        check.checks["engine_snapshot"] = any(s.get("tree") == artifact.engine_tree for s in found)
        if not check.checks["engine_snapshot"]:
            check.message = (
                f"no engine snapshot tagged {artifact.engine_tag} with tree {artifact.engine_tree[:12]} "
                f"in {target.name}:{artifact.key}"
            )
        repo.unlock()  # a run killed mid-backup leaves a stale lock; a live one stays and check says so
        result = repo.check(read_data=True)
    except (MaintkitError, OSError) as error:
        check.message = check.message or f"could not read {target.name}:{artifact.key}: {error}"
        return check
    check.checks["read_data"] = result.returncode == 0
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        packs = damaged_packs(output)
        damage = f"damaged pack(s) {', '.join(packs)}" if packs else output.strip()[-600:]
        check.message = "; ".join(
            m for m in (check.message, f"restic check --read-data failed in {target.name}: {damage}") if m
        )
    check.ok = all(check.checks.values())
    return check


@dataclass
class EnginePrune:
    """What pruning a target's repository did."""

    forgotten: list[str] = field(default_factory=list)  # engine tags forgotten
    debris: list[str] = field(default_factory=list)  # of those, tags of snapshots without manifest
    pruned: bool = False  # ``restic prune`` ran


def prune_engine(
    target: Target,
    site: str,
    env: str,
    pruned_ids: Iterable[str],
    complete_ids: Iterable[str],
    now: datetime,
    *,
    dry_run: bool = False,
) -> EnginePrune:
    """Forget the engine snapshots of ``pruned_ids`` and the debris, then prune the repository once.

    ``complete_ids``: the snapshots with a manifest (kept or not); an engine snapshot tagged with any
    other id older than 24 h is debris. Nothing happens where the site has no repository.
    """
    done = EnginePrune()
    key = repository_key(site, env)
    if not target.exists(f"{key}/config"):
        return done
    password_file = existing_password(site, env)
    repo = repository(target, key, password_file)
    reader = RepositoryReader.open(target, key, read_password(password_file))
    wanted = {engine_tag(i) for i in pruned_ids}
    complete = set(complete_ids)
    forget: list[str] = []
    # read from storage (light key), else by restic: the night's snapshot step may have just listed it
    for snapshot in reader.snapshots() if reader else repo.last_listing():
        tags = [str(t) for t in snapshot.get("tags") or [] if str(t).startswith(TAG_PREFIX)]
        for tag in tags:
            snapshot_id = tag[len(TAG_PREFIX) :]
            taken = parse_snapshot_id(snapshot_id)
            stale = taken is not None and now - taken > UNFINISHED_GRACE
            if tag in wanted or (snapshot_id not in complete and stale):
                forget.append(str(snapshot["id"]))
                done.forgotten.append(tag)
                if tag not in wanted:
                    done.debris.append(tag)
                break
    if forget and not dry_run:
        try:
            repo.unlock()  # stale locks only: a backup running now keeps its lock (prune then fails)
            repo.forget(forget)
            repo.prune()
        except ResticError as error:
            raise ResticError(
                f"pruning the restic repository of {site}/{env} in {target.name}: {error}"
            ) from None
        done.pruned = True
    return done
