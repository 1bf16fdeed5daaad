"""What counts as production, so that a drill (which overwrites and then wipes its target) never
touches it.

A drill target resolves to production when any of these holds:

1. its environment is named ``production`` or ``prod`` (any case);
2. its inventory host says ``production: true``;
3. it is the same place as a host of the *source* environment:

   * files: the same SSH server (address and port) and the same root folder (a ``~/`` root also
     needs the same login user: it is that user's home);
   * database: the same database name on the same database server. A database on ``localhost``
     (or 127.0.0.1, ::1, a socket) is on the SSH server, so the server is that address; otherwise
     it is the database host and port. Two instances on one machine are taken to be one server:
     refusing a drill is the safe mistake;
   * application config (``database: {from: magento, root: …}``): the same SSH server and root,
     i.e. the same ``env.php``.

The rules above compare what the inventories *say*; they are applied by ``maintkit drill`` before
any connection (exit 2), and again by the ``restore`` and ``drill_cleanup`` actions on each host.

What the inventories say is not enough (``localhost`` vs the socket vs the host's address; a
``database: {from: magento}`` names no database; a symlinked root). So the ``restore`` action also
compares *identities* resolved on the hosts (:mod:`maintkit.sources.identity`):
:func:`identity_reasons` takes the target's, resolved just before the first write, and the source's,
recorded in the snapshot's manifest. A manifest written before identities were recorded still has
the source database's *name*: the target is then refused when its database has that name (its
server cannot be told apart), and refused when no name is known at all.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from maintkit.sources.identity import (
    DatabaseIdentity,
    FilesIdentity,
    SourceIdentity,
    folder_overlap,
    same_database,
)

PRODUCTION_ENV_NAMES = frozenset({"production", "prod"})
LOCAL_DB_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "localhost.localdomain"})


@dataclass(frozen=True)
class Place:
    """Where one site instance keeps its files and database, as its inventory describes it."""

    host: str
    address: str
    port: int
    user: str
    files_root: str | None = None
    db_server: str | None = None  # "ADDRESS" (local to the SSH server) or "HOST:PORT"
    db_name: str | None = None
    app_root: str | None = None  # with database: {from: APP, root: ...}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Place:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def _address(address: str) -> str:
    address = address.strip().lower()
    return "127.0.0.1" if address in ("localhost", "::1", "localhost.localdomain") else address


def _folder(root: str | None, user: str) -> str | None:
    """A comparable form of a root folder: ``~`` paths are tied to their user."""
    if not root:
        return None
    root = root.rstrip("/") or "/"
    if root == "~" or root.startswith("~/"):
        return f"~{user}" + posixpath.normpath("/" + root[1:].lstrip("/")).rstrip("/")
    return posixpath.normpath(root)


def place_of(
    host: str,
    address: str,
    port: int | None,
    user: str | None,
    files: Mapping[str, Any] | None,
    database: Mapping[str, Any] | None,
) -> Place:
    """Given a host's connection settings and its ``files``/``database`` variables, its place."""
    login = user or ""
    server = _address(address or host)
    root = files.get("root") if isinstance(files, Mapping) else None
    db_server = db_name = app_root = None
    if isinstance(database, Mapping):
        if database.get("from"):
            app_root = _folder(str(database.get("root") or ""), login)
        else:
            db_host = str(database.get("host") or "localhost")
            if _address(db_host) in LOCAL_DB_HOSTS or database.get("socket"):
                db_server = server
            else:
                db_server = f"{_address(db_host)}:{database.get('port') or 3306}"
            db_name = str(database.get("name") or "") or None
    return Place(host, server, int(port or 22), login, _folder(root, login), db_server, db_name, app_root)


def marked_production(value: Any) -> bool:
    """Whether a host's ``production`` variable says yes (``true``, ``yes``, ``1``, ``on``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def production_reasons(
    env: str, place: Place, marked_production: bool, sources: Iterable[Place]
) -> list[str]:
    """Why restoring a drill into ``place`` (a host of environment ``env``) would hit production."""
    reasons = []
    if env.lower() in PRODUCTION_ENV_NAMES:
        reasons.append(f"its environment is named {env!r}")
    if marked_production:
        reasons.append("the inventory marks it production: true")
    for source in sources:
        same_server = (place.address, place.port) == (source.address, source.port)
        if same_server and place.files_root and place.files_root in (source.files_root, source.app_root):
            reasons.append(f"its files root is {source.host}'s ({place.files_root} on {place.address})")
        if same_server and place.app_root and place.app_root in (source.files_root, source.app_root):
            reasons.append(f"its database settings come from {source.host}'s application config")
        if (
            place.db_name
            and place.db_server
            and (place.db_server, place.db_name)
            == (
                source.db_server,
                source.db_name,
            )
        ):
            reasons.append(f"its database is {source.host}'s ({place.db_name} on {place.db_server})")
    return reasons


def identity_reasons(
    target_db: DatabaseIdentity | None,
    target_files: FilesIdentity | None,
    source: SourceIdentity | None,
    source_db_names: Iterable[str],
    source_label: str,
    target_root: str | None = None,
) -> list[str]:
    """Why the target (identities resolved on its host) is the source (``source``: the manifest's
    record; ``source_db_names``: database names known otherwise, for manifests without it)."""
    reasons = []
    if target_db is not None:
        if source is not None and source.database is not None:
            if same_database(target_db, source.database):
                reasons.append(
                    f"the target database {target_db.describe()} is the source's "
                    f"({source_label}: {source.database.describe()})"
                )
        else:
            names = sorted({n for n in source_db_names if n})
            if not names:
                reasons.append(
                    f"the snapshot records neither the identity nor the name of its source database "
                    f"({source_label}), so the target database {target_db.describe()} cannot be shown "
                    "to be another one: take a new snapshot (it records both)"
                )
            elif target_db.name.lower() in (n.lower() for n in names):
                reasons.append(
                    f"the snapshot (taken by an older maintkit) does not record its source database's "
                    f"server, and the target database {target_db.describe()} has the source's name "
                    f"({source_label}: {', '.join(names)}): it cannot be shown to be another database; "
                    "take a new snapshot (it records the server) or restore into another database name"
                )
    if target_files is not None and source is not None and source.files is not None:
        how = folder_overlap(target_files, source.files)
        if how is not None:
            spelled = f"{target_root} ({target_files.describe()})" if target_root else target_files.describe()
            reasons.append(
                f"the target folder {spelled} {how} the source's ({source_label}: {source.files.describe()})"
            )
    return reasons
