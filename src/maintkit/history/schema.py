"""Facts about the history's schema that the recording path needs without importing SQLAlchemy.

Why apart from :mod:`.models` and :mod:`.database`: every ``maintkit run`` records its run, and
importing SQLAlchemy (its ORM above all) cost a run about a third of a CPU-second and 30 MB
(docs/performance.md, "Recording without SQLAlchemy"). The plain writer (:mod:`.sqlitewriter`)
needs only the newest revision and the tables' names; unit tests keep both equal to the models'
and to Alembic's head.
"""

from __future__ import annotations

#: the newest migration shipped (tests/unit/test_history_migrations.py keeps it equal to Alembic's head)
HEAD = "0003"

#: the tables of a run's facts, in the order they are written (``runs`` first); the same as
#: :data:`maintkit.history.models.FACT_MODELS` (tests/unit/test_history_sqlitewriter.py)
FACT_TABLES: tuple[str, ...] = (
    "host_outcomes",
    "snapshots",
    "verifications",
    "drills",
    "updates",
    "audit_findings",
    "smoke_checks",
    "releases",
    "rollbacks",
    "lock_waits",
    "disk_space",
)

#: the ``command`` of a ``maintkit fleet run``'s own row; each of its sites' runs is ``fleet``. The
#: fleet itself holds no lock and takes no snapshot: its row says which sites ran and how it ended
FLEET_COMMAND = "fleet run"
