"""The manifest that closes a snapshot, and the verification record kept beside it.

Why a manifest written last: a snapshot folder is only a snapshot once ``manifest.json`` is there
(DESIGN.md). Everything before it may be half-written; everything it lists was committed before it
was written. It records what a restore and a verify need without reading the artifacts: each
artifact's size, SHA-256 (of the bytes as stored, i.e. after compression and encryption),
compression, encryption and source; the database and its tables (with row counts when known, for
the drill's comparison); the tool version; the application's fingerprint; timings.

Why ``format_version``: snapshots outlive the maintkit that wrote them. A reader refuses a format it
does not know (newer) with a clear message, and ignores fields it does not know within its format
(additions are backwards compatible; a change of meaning bumps the version).

Why the verification record is a separate file: the manifest is immutable (under Object Lock it
cannot be rewritten); each ``verify`` writes ``verification.json`` anew beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from maintkit.model.record import RecordFormat
from maintkit.sources.identity import SourceIdentity
from maintkit.storage.base import StorageError, Target, parse_snapshot_id, snapshot_key, snapshot_prefix
from maintkit.storage.retention import SnapshotInfo

#: the newest manifest format this maintkit reads and writes: 2 when the manifest holds an engine
#: artifact (an older maintkit, which knows only 1, refuses it clearly instead of taking the
#: engine's empty sha256 for damage); a manifest of stored files only is written as format 1
FORMAT_VERSION = 2
PLAIN_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
VERIFICATION_NAME = "verification.json"

Compression = Literal["zstd", "gzip", "none"]
Encryption = Literal["none", "age", "restic"]
#: a file tree kept by an engine (issue 16) instead of a stored file: docs/snapshots.md
Engine = Literal["restic"]


class ManifestError(StorageError):
    """A manifest or verification record is unreadable, invalid, or of a format this maintkit lacks."""


def _utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (a naive one is taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Artifact:
    """One file of a snapshot, as stored."""

    name: str  # "db.sql.zst", "files.tar.zst"
    key: str  # relative to the target: SITE/ENV/ID/NAME (identical in every target)
    size: int  # bytes as stored
    sha256: str  # hex, of the bytes as stored
    compression: Compression = "zstd"
    encryption: Encryption = "none"
    source: str = ""  # what was read: "mysqldump of shop on prod1", "tar of /var/www/shop"
    # An artifact kept by an engine (``files_engine: restic``) is no file of its own: the tree lives
    # as one engine snapshot in the site's repository, ``key`` names that repository (SITE/ENV/restic,
    # relative to the target, identical in every target), ``size`` is what the night added to it and
    # ``sha256`` is empty. A manifest holding one is format 2 (an older maintkit refuses it clearly).
    engine: Engine | None = None
    engine_snapshot: str = ""  # the engine's full snapshot id (restic's 64 hex digits)
    engine_tag: str = ""  # the tag that ties it to this snapshot: "maintkit-<snapshot id>"
    engine_tree: str = ""  # restic's tree id, checked again before a restore reads it
    files_count: int | None = None  # files in the tree (restic's summary)
    tree_bytes: int | None = None  # bytes of the tree as it was read on the host


@dataclass
class Table:
    """One table of the dump; ``rows`` when counted (for the drill's comparison)."""

    name: str
    rows: int | None = None


@dataclass
class DatabaseInfo:
    """The database a dump came from, and its tables."""

    name: str
    tables: list[Table] = field(default_factory=list)


@dataclass
class Manifest:
    """What a snapshot holds; written last, it is what makes the folder a snapshot."""

    snapshot_id: str
    site: str
    env: str
    host: str
    run_id: str
    tool_version: str
    created: datetime
    finished: datetime
    artifacts: list[Artifact] = field(default_factory=list)
    database: DatabaseInfo | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # {"composer.lock": "sha256..."}
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    # fingerprints of the age recipients of the artifacts whose encryption is "age" (not the keys:
    # see storage/encryption.py); an addition within format 1, so older readers ignore it
    encrypted_to: list[str] = field(default_factory=list)
    # what the snapshot read, as its host described it (database server and name, real folder): a
    # restore into another environment compares its target with it. An addition within format 1:
    # manifests written before it load with None (docs/restore.md says what a restore does then)
    identity: SourceIdentity | None = None
    format_version: int = PLAIN_FORMAT_VERSION

    def __post_init__(self) -> None:
        self.created = _utc(self.created)
        self.finished = _utc(self.finished)

    def artifact(self, name: str) -> Artifact | None:
        """The artifact called ``name``, or None."""
        return next((a for a in self.artifacts if a.name == name), None)

    @property
    def size(self) -> int:
        """The total size of the artifacts as stored."""
        return sum(a.size for a in self.artifacts)

    def to_json(self) -> bytes:
        document = _MANIFEST.dump_python(self, mode="json")
        for artifact in document["artifacts"]:
            if artifact["engine"] is None:  # a stored file: written as format 1 always wrote it
                for name in _ENGINE_FIELDS:
                    del artifact[name]
        engine = any(a.engine is not None for a in self.artifacts)
        return (_FORMAT if engine else _PLAIN_FORMAT).dump(document)

    @classmethod
    def from_json(cls, data: bytes | str, where: str = MANIFEST_NAME) -> Manifest:
        manifest: Manifest = _load(_MANIFEST, data, where)
        return manifest


@dataclass
class ArtifactCheck:
    """What verify found about one artifact. ``checks`` names each check run and whether it passed
    (``size``, ``sha256``, ``decompress``, ``tar_listing``, ``dump_trailer``)."""

    name: str
    ok: bool
    size: int | None = None
    sha256: str | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    message: str = ""  # why it failed, for people


@dataclass
class Verification:
    """The last verification of a snapshot in one target (``verification.json``)."""

    snapshot_id: str
    time: datetime
    ok: bool
    results: list[ArtifactCheck] = field(default_factory=list)
    tool_version: str = ""
    duration: float | None = None
    format_version: int = PLAIN_FORMAT_VERSION

    def __post_init__(self) -> None:
        self.time = _utc(self.time)

    def to_json(self) -> bytes:
        return _dump(_VERIFICATION, self)

    @classmethod
    def from_json(cls, data: bytes | str, where: str = VERIFICATION_NAME) -> Verification:
        verification: Verification = _load(_VERIFICATION, data, where)
        return verification


#: the Artifact fields of an engine artifact only, left out of a stored file's record
_ENGINE_FIELDS = ("engine", "engine_snapshot", "engine_tag", "engine_tree", "files_count", "tree_bytes")

#: manifest.json and verification.json: ``format_version`` first, required; read up to 2, and
#: written as 1 unless an engine artifact needs 2 (a verification record is always 1)
_FORMAT = RecordFormat(MANIFEST_NAME, key="format_version", version=FORMAT_VERSION)
_PLAIN_FORMAT = RecordFormat(MANIFEST_NAME, key="format_version", version=PLAIN_FORMAT_VERSION)
_MANIFEST: TypeAdapter[Manifest] = TypeAdapter(Manifest)
_VERIFICATION: TypeAdapter[Verification] = TypeAdapter(Verification)


def _dump(adapter: TypeAdapter[Any], value: Any) -> bytes:
    return _PLAIN_FORMAT.dump(adapter.dump_python(value, mode="json"))


def _load(adapter: TypeAdapter[Any], data: bytes | str, where: str) -> Any:
    raw = _FORMAT.load(data, ManifestError, where)
    try:
        return adapter.validate_python(raw)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise ManifestError(f"{where} is invalid: {path}: {first['msg']}") from None


def manifest_key(site: str, env: str, snapshot_id: str) -> str:
    return snapshot_key(site, env, snapshot_id, MANIFEST_NAME)


def verification_key(site: str, env: str, snapshot_id: str) -> str:
    return snapshot_key(site, env, snapshot_id, VERIFICATION_NAME)


def write_manifest(target: Target, manifest: Manifest) -> str:
    """Write ``manifest`` into its snapshot's folder (last, after every artifact); return its key."""
    key = manifest_key(manifest.site, manifest.env, manifest.snapshot_id)
    target.put_bytes(key, manifest.to_json())
    return key


def read_manifest(target: Target, site: str, env: str, snapshot_id: str) -> Manifest | None:
    """The snapshot's manifest, or None when the folder has none (an unfinished snapshot)."""
    key = manifest_key(site, env, snapshot_id)
    if not target.exists(key):
        return None
    return Manifest.from_json(target.get_bytes(key), f"{target.name}:{key}")


def write_verification(target: Target, site: str, env: str, verification: Verification) -> str:
    """Write the verification record beside the snapshot's manifest; return its key."""
    key = verification_key(site, env, verification.snapshot_id)
    target.put_bytes(key, verification.to_json())
    return key


def read_verification(target: Target, site: str, env: str, snapshot_id: str) -> Verification | None:
    """The snapshot's last verification in ``target``, or None when it was never verified."""
    key = verification_key(site, env, snapshot_id)
    if not target.exists(key):
        return None
    return Verification.from_json(target.get_bytes(key), f"{target.name}:{key}")


def list_snapshots(target: Target, site: str, env: str) -> list[SnapshotInfo]:
    """Return what retention needs to know of every snapshot folder of ``site``/``env``, oldest first.

    Only folders named like snapshot ids count: other folders beside them (release records, say)
    are never taken for unfinished snapshots, so never swept. A folder is complete when it has a
    manifest; verified when its last verification says ok, with ``verify_problem`` saying why when
    it failed (or its record does not read); its size is that of all its objects.
    A manifest that does not read (corrupt, or from a newer maintkit) sets ``problem``: retention
    then keeps the folder, neither counting it as good nor sweeping it.
    """
    infos: list[SnapshotInfo] = []
    sizes: dict[str, int] = {}
    names: dict[str, set[str]] = {}
    prefix = snapshot_prefix(site, env)
    for key, size, _modified in target.list_keys(prefix):
        snapshot_id, _, name = key[len(prefix) :].partition("/")
        sizes[snapshot_id] = sizes.get(snapshot_id, 0) + size
        names.setdefault(snapshot_id, set()).add(name)
    for snapshot_id in target.list_dir(prefix):
        time = parse_snapshot_id(snapshot_id)
        if time is None:
            continue
        found = names.get(snapshot_id, set())
        complete = MANIFEST_NAME in found
        problem = _manifest_problem(target, site, env, snapshot_id) if complete else None
        verified, verify_problem = False, None
        if complete and problem is None and VERIFICATION_NAME in found:
            verified, verify_problem = _last_verification(target, site, env, snapshot_id)
        size = sizes.get(snapshot_id, 0)
        infos.append(SnapshotInfo(snapshot_id, time, complete, verified, size, problem, verify_problem))
    return sorted(infos, key=lambda info: (info.time, info.id))


def verification_problem(verification: Verification) -> str | None:
    """Why a verification failed, for people (each failed artifact and its reason); None if it passed."""
    if verification.ok:
        return None
    failed = [f"{r.name}: {r.message or 'failed'}" for r in verification.results if not r.ok]
    return "; ".join(failed) or "no artifact was checked"


def _manifest_problem(target: Target, site: str, env: str, snapshot_id: str) -> str | None:
    """None when the snapshot's manifest reads, else why not."""
    key = manifest_key(site, env, snapshot_id)
    try:
        Manifest.from_json(target.get_bytes(key), f"{target.name}:{key}")
    except StorageError as error:
        return str(error)
    return None


def _last_verification(target: Target, site: str, env: str, snapshot_id: str) -> tuple[bool, str | None]:
    """(verified, why not) from the snapshot's verification record; an unreadable record is a problem."""
    try:
        verification = read_verification(target, site, env, snapshot_id)
    except StorageError as error:
        return False, f"verification record does not read: {error}"
    if verification is None:
        return False, None
    return verification.ok, verification_problem(verification)
