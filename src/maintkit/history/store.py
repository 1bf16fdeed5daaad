"""Writing runs into the history and listing them: one transaction per run, idempotent.

Why delete-then-insert: a run is written twice live (a row at ``run_start`` so that ``status`` sees
who holds a lock, everything at the end) and may be imported again from its journal; replacing all
of the run's rows in one transaction makes every write of a run the last word on it, never a double.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from maintkit.history.database import open_engine
from maintkit.history.mapping import RunRecord
from maintkit.history.models import FACT_MODELS, Run

_BY_TABLE: dict[str, Any] = {model.__tablename__: model for model in FACT_MODELS}


class HistoryStore:
    """The history database of one URL (opened and migrated by :func:`open_engine`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, connected: Callable[[], None] | None = None) -> HistoryStore:
        """Open (and migrate) the database of ``url``; ``connected``: see :func:`open_engine`."""
        return cls(open_engine(url, connected))

    def record(self, record: RunRecord) -> None:
        """Replace everything the history holds of this run by ``record`` (one transaction)."""
        run_id = record.run["id"]
        with Session(self.engine) as session, session.begin():
            for model in FACT_MODELS:
                session.execute(delete(model).where(model.run_id == run_id))  # type: ignore[attr-defined]
            session.execute(delete(Run).where(Run.id == run_id))
            session.add(Run(**record.run))
            session.flush()  # the run row before its facts (PostgreSQL checks the foreign keys)
            for table, rows in record.facts.items():
                model = _BY_TABLE[table]
                session.add_all(model(run_id=run_id, **row) for row in rows)

    def runs(self, limit: int = 20, env: str | None = None, include_check: bool = False) -> Sequence[Run]:
        """The newest runs first (``--check`` runs only when asked)."""
        query = select(Run).order_by(Run.started.desc(), Run.id.desc()).limit(limit)
        if env:
            query = query.where(Run.env == env)
        if not include_check:
            query = query.where(Run.check.is_(False))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def close(self) -> None:
        self.engine.dispose()
