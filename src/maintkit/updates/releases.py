"""Releases on a host: ``ROOT/releases/ID``, ``ROOT/shared``, ``ROOT/current`` and their history.

Layout (DESIGN.md)::

    ROOT/current -> releases/20261122T031500Z      relative symlink, switched atomically
    ROOT/releases/ID/                             one folder per release
    ROOT/shared/app/etc/env.php, pub/media, ...    linked into every release
    ROOT/.maintkit/releases.json                   the history (this module's :class:`History`)

Why these choices:

* **Hard links where safe, real copies where tools rewrite files in place.** A new release starts
  as ``cp -al`` of the current one: seconds and no disk for a Magento tree of 100 000 files. A hard
  link shares the file, so anything that *writes into* an existing file (composer rewriting
  ``vendor/``, ``composer.json``/``composer.lock``, ``setup:upgrade`` rewriting
  ``app/etc/config.php``, caches) would change the live release too: those paths are real copies
  (``copy``) or start empty (``clear``). Tools that replace files (write a new file, rename) are
  safe with hard links.
* **Atomic switch**: ``ln -sfn`` to a temporary name, then ``mv -T`` over ``current`` (one
  ``rename(2)``): a request sees the old release or the new one, never a missing link.
* **History on the host, edited on the control node.** The host keeps one JSON file; maintkit
  reads it, changes it in Python and writes it back atomically. No tool beyond coreutils is needed
  on the server, and the environment lock means nobody edits it concurrently.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from maintkit.model.problems import StepFailed
from maintkit.model.record import RecordFormat, known_fields
from maintkit.sources.script import bash_command, host_path, parse_pairs
from maintkit.storage.base import new_snapshot_id, parse_snapshot_id
from maintkit.updates.hostio import Runs, quote_all, read_file, write_file

HISTORY_FILE = ".maintkit/releases.json"
HISTORY_LIMIT = 100  # entries kept in the history file (removed releases included)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_id(release_id: str) -> str:
    """Return ``release_id`` if it can name a release folder (letters, digits, ``._-``), else raise."""
    if not _ID_RE.match(release_id) or release_id in (".", ".."):
        raise StepFailed(f"invalid release id {release_id!r}")
    return release_id


def check_relative(path: str) -> str:
    """Return a path relative to a release (``app/etc/env.php``) or raise: no ``..``, not absolute."""
    parts = path.strip("/").split("/")
    if path.startswith("/") or not path.strip("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r} must be a relative path inside the release, without '..'")
    return path.strip("/")


@dataclass
class Release:
    """One release as the history records it."""

    id: str
    created: str
    state: str = "prepared"  # prepared | current | old | failed
    run_id: str | None = None
    playbook: str | None = None
    from_release: str | None = None
    switched_at: str | None = None
    composer_lock_sha256: str | None = None
    promoted_from: str | None = None
    reason: str | None = None
    removed: bool = False

    @property
    def created_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.created)
        except ValueError:
            return None


#: the history file: ``"format": 1`` first; files without it are read as format 1
HISTORY_FORMAT = RecordFormat("the release history", key="format", version=1, missing=1)


@dataclass
class History:
    """The release history of one site root: releases oldest first, and which one is current."""

    releases: list[Release] = field(default_factory=list)
    current: str | None = None

    @classmethod
    def parse(cls, data: bytes | None) -> History:
        if not data:
            return cls()
        raw = HISTORY_FORMAT.load(data, StepFailed)
        try:
            releases = [Release(**known_fields(Release, r)) for r in raw.get("releases", [])]
        except (ValueError, TypeError, AttributeError) as error:
            raise StepFailed(f"the release history is not of maintkit's format: {error}") from error
        return cls(releases, raw.get("current"))

    def to_bytes(self) -> bytes:
        kept = self.releases[-HISTORY_LIMIT:]
        return HISTORY_FORMAT.dump({"current": self.current, "releases": [asdict(r) for r in kept]})

    def get(self, release_id: str) -> Release | None:
        return next((r for r in self.releases if r.id == release_id), None)

    def ensure(self, release_id: str) -> Release:
        """Return the entry of ``release_id``, adding one for a release maintkit did not create
        (a site's first release, made by hand): its time comes from an id that is a timestamp."""
        found = self.get(release_id)
        if found is None:
            when = parse_snapshot_id(release_id)
            found = Release(release_id, when.isoformat() if when else "", state="old")
            self.releases.insert(0, found)
        return found

    def switched(self, target: str, previous: str | None, now: datetime, lock_sha: str | None) -> None:
        """Record that ``current`` now points to ``target`` (it pointed to ``previous``)."""
        for release in self.releases:
            if release.state == "current":
                release.state = "old"
        entry = self.ensure(target)
        if entry.state == "prepared":  # its first switch: it replaces ``previous`` (going back to
            entry.from_release = entry.from_release or previous  # an old release keeps its origin)
        entry.state = "current"
        entry.switched_at = now.isoformat()
        if lock_sha:
            entry.composer_lock_sha256 = lock_sha
        self.current = target

    def reconcile(self, live: str | None) -> None:
        """Make the history agree with the host: the release ``current`` points to is *current*.

        Why: a rollback goes back to the release a new one was made from. If the history called the
        live release failed (a hand-made switch, or a history written by an earlier maintkit whose
        ``rollback`` marked the live release failed when it had nowhere to go), a later update made
        from it would have no release to go back to. The live release is the one known to serve,
        so the host's link wins; the record is kept (``reason``) and the state repaired.
        """
        if live is None:
            return
        for release in self.releases:
            if release.state == "current" and release.id != live:
                release.state = "old"
        entry = self.ensure(live)
        if entry.state != "current":
            if entry.state == "failed":
                entry.reason = f"live again (was failed: {entry.reason or 'no reason recorded'})"
            entry.state = "current"
        self.current = live

    def plan_rollback(self, current: str, failed: str | None, to: str | None) -> RollbackPlan:
        """Decide a rollback: which release to make current, whether to switch, what to mark failed.

        Rules (each one keeps a later rollback possible):

        * the release to abandon is ``failed``, else the live one;
        * with ``to``, go there; when the abandoned release is live, go to :meth:`rollback_target`;
          when it is not live (the run failed before its switch), stay where ``current`` is;
        * a release is marked failed only when it is abandoned for another one: the live release
          only when the switch away from it happens, so "nowhere to go back to" marks nothing;
        * nothing to go back to (or its folder gone) raises before anything is marked.
        """
        abandoned = failed or current
        if to:
            target: str | None = to
        elif abandoned == current:
            target = self.rollback_target(abandoned)
        else:
            target = current
        if target is None:
            raise StepFailed(
                f"no release to go back to from {abandoned}: the history names none before it "
                "(give the release to go back to: --to RELEASE / to:)"
            )
        return RollbackPlan(abandoned, target, switch=target != current, mark_failed=abandoned != target)

    def rollback_target(self, failed: str) -> str | None:
        """The release to go back to when ``failed`` is abandoned: the one it was made or switched
        from, else the newest release before it that did not fail and still exists."""
        entry = self.get(failed)
        if entry and entry.from_release:
            origin = self.get(entry.from_release)
            if origin is None or (origin.state != "failed" and not origin.removed):
                return entry.from_release
        ids = [r.id for r in self.releases]
        before = self.releases[: ids.index(failed)] if failed in ids else self.releases
        for release in reversed(before):
            if release.state != "failed" and not release.removed:
                return release.id
        return None


@dataclass(frozen=True)
class RollbackPlan:
    """What :meth:`History.plan_rollback` decided."""

    abandoned: str
    target: str
    switch: bool
    mark_failed: bool


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_release_id(history: History, existing: list[str], now: datetime) -> str:
    """A new id: the UTC time to the second (``20261122T031500Z``), ``-2``... on a collision."""
    return new_snapshot_id(now, {*existing, *(r.id for r in history.releases)})


# -- commands ---------------------------------------------------------------------------------------


def state_command(root: str) -> str:
    """Print ``current=ID`` and one ``release=ID`` line per folder in ``ROOT/releases``."""
    body = "\n".join(
        [
            f"root={host_path(root)}",
            'if [ -L "$root/current" ]; then echo "current=$(basename "$(readlink "$root/current")")"; '
            'elif [ -e "$root/current" ]; then echo "current_is_not_a_link=1"; fi',
            'if [ -d "$root/releases" ]; then',
            '  for d in "$root"/releases/*/; do [ -d "$d" ] && echo "release=$(basename "$d")"; done',
            "fi",
        ]
    )
    return bash_command(body)


@dataclass
class ReleaseState:
    current: str | None
    folders: list[str]
    current_is_not_a_link: bool = False


def parse_state(stdout: str) -> ReleaseState:
    current = None
    folders: list[str] = []
    not_link = False
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "current":
            current = value
        elif key == "release" and not value.endswith(".part"):
            folders.append(value)
        elif key == "current_is_not_a_link":
            not_link = True
    return ReleaseState(current, sorted(folders), not_link)


#: a --check preview's throw-away copy: ``ROOT/releases/.maintkit-check-RUN``. Beside the releases, so
#: relative paths (composer path repositories) resolve as in a real release; a dot name, so neither
#: the release listing (``releases/*/``) nor ``cleanup`` ever sees it
PREVIEW_PREFIX = ".maintkit-check-"
_PREVIEW_RE = re.compile(r"^\.maintkit-check-[A-Za-z0-9._-]{1,100}$")


def preview_folder(run_id: str) -> str:
    """The name of the throw-away copy a --check preview of run ``run_id`` works in."""
    name = PREVIEW_PREFIX + re.sub(r"[^A-Za-z0-9._-]", "-", run_id)[:100]
    if not _PREVIEW_RE.match(name):
        raise StepFailed(f"invalid preview folder name {name!r}")
    return name


def prepare_command(
    root: str, release_id: str, *, shared: list[str], copy: list[str], clear: list[str]
) -> str:
    """The script that makes ``ROOT/releases/ID`` from the current release (see the module doc).

    It works in ``ID.part`` and renames it at the end, so a failed prepare leaves no half release
    (a trap removes the part). Exit 3 with a ``maintkit:`` message when the layout is not there.
    ``ID`` may also be a :func:`preview_folder` name (the same copy, for a --check preview).
    """
    if not _PREVIEW_RE.match(release_id):
        check_id(release_id)
    shared, copy, clear = (
        [check_relative(p) for p in shared],
        [check_relative(p) for p in copy],
        [check_relative(p) for p in clear],
    )
    body = "\n".join(
        [
            "set -euo pipefail",
            f"root={host_path(root)}",
            f'new="$root/releases/"{release_id}',
            'fail() { echo "maintkit: $*" >&2; exit 3; }',
            '[ -L "$root/current" ] || fail "$root/current is not a symlink: this site does not use the '
            'releases layout (see docs/updates.md)"',
            'cur=$(readlink -f "$root/current")',
            '[ -d "$cur" ] || fail "$root/current points to a missing folder ($cur)"',
            '[ ! -e "$new" ] || fail "$new exists already"',
            f"for p in {quote_all(shared)}; do",
            '  [ -e "$root/shared/$p" ] || fail "shared path missing: $root/shared/$p (create it first)"',
            "done",
            'rm -rf "$new.part"',
            "trap 'rm -rf \"$new.part\"' EXIT",
            'cp -al "$cur" "$new.part"',
            f"for p in {quote_all(copy)}; do",
            '  if [ -e "$cur/$p" ] || [ -L "$cur/$p" ]; then',
            '    rm -rf "$new.part/$p"; cp -a "$cur/$p" "$new.part/$p"',
            "  fi",
            "done",
            f"for p in {quote_all(clear)}; do",
            '  rm -rf "$new.part/$p"; mkdir -p "$new.part/$p"',
            "done",
            f"for p in {quote_all(shared)}; do",
            '  rm -rf "$new.part/$p"; mkdir -p "$(dirname "$new.part/$p")"',
            '  ln -s "$root/shared/$p" "$new.part/$p"',
            "done",
            'mv -T "$new.part" "$new"',
            "trap - EXIT",
            'echo "current=$(basename "$cur")"',
            'echo "path=$new"',
        ]
    )
    return bash_command(body)


def switch_command(root: str, release_id: str) -> str:
    """Point ``ROOT/current`` at ``releases/ID`` atomically; print the previous target and the new
    release's composer.lock hash (when it has one)."""
    check_id(release_id)
    body = "\n".join(
        [
            "set -euo pipefail",
            f"root={host_path(root)}",
            f"target=releases/{release_id}",
            '[ -d "$root/$target" ] || { echo "maintkit: $root/$target does not exist" >&2; exit 3; }',
            'if [ -L "$root/current" ]; then echo "previous=$(basename "$(readlink "$root/current")")"; fi',
            'ln -sfn "$target" "$root/.current.maintkit-tmp"',
            'mv -T "$root/.current.maintkit-tmp" "$root/current"',
            'if [ -f "$root/$target/composer.lock" ]; then',
            '  sum=$(sha256sum < "$root/$target/composer.lock"); echo "composer_lock_sha256=${sum%% *}"',
            "fi",
        ]
    )
    return bash_command(body)


def remove_preview_command(root: str, folder: str) -> str:
    """Delete a preview copy (and any other left by a killed --check more than a day ago)."""
    if not _PREVIEW_RE.match(folder):
        raise StepFailed(f"invalid preview folder name {folder!r}")
    body = "\n".join(
        [
            f"root={host_path(root)}",
            f'rm -rf -- "$root/releases/"{shlex.quote(folder)} "$root/releases/"{shlex.quote(folder)}.part',
            f'find "$root/releases" -mindepth 1 -maxdepth 1 -name {shlex.quote(PREVIEW_PREFIX + "*")} '
            "-mmin +1440 -exec rm -rf -- {} +",
        ]
    )
    return bash_command(body)


def remove_command(root: str, release_ids: list[str]) -> str:
    """Delete release folders (never ``current``: the script re-checks on the host)."""
    ids = [check_id(i) for i in release_ids]
    body = "\n".join(
        [
            "set -euo pipefail",
            f"root={host_path(root)}",
            'cur=$(basename "$(readlink "$root/current" 2>/dev/null || echo none)")',
            f"for id in {quote_all(ids)}; do",
            '  if [ "$id" = "$cur" ]; then',
            '    echo "maintkit: refusing to remove the current release $id" >&2; exit 3',
            "  fi",
            '  rm -rf -- "$root/releases/$id"',
            "done",
        ]
    )
    return bash_command(body)


# -- the operations, shared by the action and the CLI ----------------------------------------------


class ReleaseRoot:
    """One site root on one host: its live state and history, read once, written back on change."""

    def __init__(self, run: Runs, root: str) -> None:
        self.run = run
        self.root = root.rstrip("/") or "/"
        self.history_path = f"{self.root}/{HISTORY_FILE}"
        self.history = History.parse(read_file(run, self.history_path))
        self.state = self._state()
        self.history.reconcile(self.state.current)

    def _state(self) -> ReleaseState:
        result = self.run(state_command(self.root))
        if result.rc != 0:
            raise StepFailed(f"reading the releases of {self.root} failed: {result.stderr.strip()[-500:]}")
        return parse_state(result.stdout)

    def save(self) -> None:
        write_file(self.run, self.history_path, self.history.to_bytes(), private_dir=True)

    def require_current(self) -> str:
        if self.state.current is None:
            why = "is a folder, not a symlink" if self.state.current_is_not_a_link else "does not exist"
            raise StepFailed(
                f"{self.root}/current {why}: this site does not use the releases layout (docs/updates.md)"
            )
        return self.state.current

    def path(self, release_id: str) -> str:
        return f"{self.root}/releases/{release_id}"

    def switch(self, release_id: str, run_id: str) -> tuple[str | None, str | None]:
        """Switch ``current`` to ``release_id``; return (previous id, composer.lock sha256)."""
        result = self.run(switch_command(self.root, release_id))
        if result.rc != 0:
            raise StepFailed(f"switching to {release_id} failed: {result.stderr.strip()[-500:]}")
        pairs = parse_pairs(result.stdout)
        previous = pairs.get("previous") or None
        if previous:
            self.history.ensure(previous)
        self.history.switched(release_id, previous, now_utc(), pairs.get("composer_lock_sha256"))
        self.state.current = release_id
        self.save()
        return previous, pairs.get("composer_lock_sha256")

    def rows(self) -> list[dict[str, Any]]:
        """The releases, newest first, for ``maintkit releases``: history merged with the folders."""
        seen = {r.id for r in self.history.releases}
        entries = list(self.history.releases)
        for folder in self.state.folders:
            if folder not in seen:
                when = parse_snapshot_id(folder)
                entries.append(Release(folder, when.isoformat() if when else "", state="unrecorded"))
        rows = []
        for release in entries:
            exists = release.id in self.state.folders
            if release.removed and not exists:
                continue
            rows.append(
                {
                    "id": release.id,
                    "created": release.created,
                    "current": release.id == self.state.current,
                    "state": release.state,
                    "exists": exists,
                    "promoted_from": release.promoted_from,
                    "composer_lock_sha256": release.composer_lock_sha256,
                    "run_id": release.run_id,
                    "reason": release.reason,
                }
            )
        return sorted(rows, key=lambda r: (r["created"] or "", r["id"]), reverse=True)
