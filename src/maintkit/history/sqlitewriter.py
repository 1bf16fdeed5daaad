"""Recording a run into the embedded SQLite history with the standard library's ``sqlite3``.

Why not SQLAlchemy here: every ``maintkit run`` records itself, and importing SQLAlchemy and its
ORM to write one run cost 0.3 CPU-seconds and 30 MB of memory per run (a fleet of small sites runs
hundreds of them a night; docs/performance.md). A run's record is a few plain rows
(:class:`~maintkit.history.mapping.RunRecord`: dicts keyed by column names), so writing them needs
no ORM: this module writes exactly the values SQLAlchemy would (datetimes as
``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, JSON as ``json.dumps``, booleans as 0/1), which a unit test
checks row by row against :class:`~maintkit.history.store.HistoryStore`.

Only for a database already at the newest schema revision: creating or upgrading it stays
Alembic's (:func:`record` returns False and the caller goes the SQLAlchemy way, which migrates).
PostgreSQL always goes through SQLAlchemy.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from maintkit.history.mapping import RunRecord
from maintkit.history.schema import FACT_TABLES, HEAD

#: seconds a writer waits for another one (the SQLAlchemy path's busy timeout, 10 s)
BUSY_SECONDS = 10.0
_PREFIX = "sqlite:///"
_IDENTIFIER = re.compile(r"[a-z_]+")


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (None: another database, or a URL with options)."""
    if not url.startswith(_PREFIX) or "?" in url or url == _PREFIX or url.endswith(":memory:"):
        return None
    return Path(url[len(_PREFIX) :])


def _value(value: Any) -> Any:
    """A Python value as SQLAlchemy stores it in SQLite (see the module's docstring)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _name(identifier: str) -> str:
    """A table or column name, quoted (``check`` is an SQL keyword); names are the code's, never input."""
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"not a history column or table name: {identifier!r}")
    return f'"{identifier}"'


def _insert(connection: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    columns = list(row)
    names = ", ".join(_name(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {_name(table)} ({names}) VALUES ({marks})"  # noqa: S608 (checked names, ? values)
    connection.execute(sql, [_value(row[c]) for c in columns])


def record(path: Path, run: RunRecord) -> bool:
    """Replace this run's rows in the SQLite file ``path`` (one transaction); False if not at HEAD.

    False also when the file does not exist yet: the SQLAlchemy path creates it (0600) and its
    schema. Other errors (locked past the busy timeout, disk full) are raised.
    """
    if not path.is_file():
        return False
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        try:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # no schema yet
            return False
        if found is None or found[0] != HEAD:
            return False
        connection.execute("PRAGMA synchronous=NORMAL")  # the file is in WAL mode already
        run_id = run.run["id"]
        connection.execute("BEGIN IMMEDIATE")
        try:
            for table in FACT_TABLES:
                connection.execute(f"DELETE FROM {_name(table)} WHERE run_id = ?", (run_id,))  # noqa: S608
            connection.execute('DELETE FROM "runs" WHERE id = ?', (run_id,))
            _insert(connection, "runs", run.run)
            for table in FACT_TABLES:
                for row in run.rows(table):
                    _insert(connection, table, {"run_id": run_id, **row})
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return True
    finally:
        connection.close()
