"""The history's tables (SQLAlchemy 2 declarative models); Alembic's migrations create and change them.

Why one row type per fact (snapshots, drills, updates...) instead of one table of JSON events: the
questions ``status`` asks ("the newest verified snapshot of each site") are indexed queries on
columns, which stay fast over years of nightly runs. Every row belongs to a run and is deleted with
it, so re-importing a journal replaces that run's rows instead of doubling them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _run_fk() -> ForeignKey:
    """A fresh foreign key to the run (a ForeignKey object belongs to one column)."""
    return ForeignKey("runs.id", ondelete="CASCADE")


class Base(DeclarativeBase):
    """The declarative base of the history's tables (its metadata is what Alembic compares)."""


class Run(Base):
    """One command that ran a playbook: the journal's ``run_start`` and ``run_end``."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    command: Mapped[str | None] = mapped_column(String(64))
    playbook: Mapped[str | None] = mapped_column(String(255))
    env: Mapped[str | None] = mapped_column(String(255), index=True)
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), default="unfinished")
    exit_code: Mapped[int | None] = mapped_column(Integer)
    check: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    control_host: Mapped[str | None] = mapped_column(String(255))
    control_pid: Mapped[int | None] = mapped_column(Integer)
    journal_path: Mapped[str | None] = mapped_column(Text)
    #: ``status`` looks for unfinished runs (the lock's holders) without scanning a year of runs
    __table_args__ = (Index("ix_runs_finished", "finished"),)


class HostOutcome(Base):
    """How one host of a run ended (``host_end``)."""

    __tablename__ = "host_outcomes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    host: Mapped[str] = mapped_column(String(255))
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    duration: Mapped[float | None] = mapped_column(Float)
    failed_step: Mapped[str | None] = mapped_column(Text)


class Snapshot(Base):
    """A snapshot a run took (the ``snapshot`` action's result)."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    snapshot_id: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    taken: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    engine: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (
        Index("ix_snapshots_site_env_taken", "site", "env", "taken"),
        Index("ix_snapshots_env_taken", "env", "taken"),  # the recent ones first (history.facts)
    )


class Verification(Base):
    """A ``verify`` of a snapshot: each target's verdict."""

    __tablename__ = "verifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(255))
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    checked: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ok: Mapped[bool] = mapped_column(Boolean)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        Index("ix_verifications_site_env_checked", "site", "env", "checked"),
        Index("ix_verifications_env_checked", "env", "checked"),
        Index("ix_verifications_snapshot_id", "snapshot_id"),
    )


class Drill(Base):
    """A restore drill's verdict: RTO against its objective, the data-loss window."""

    __tablename__ = "drills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    drill_env: Mapped[str | None] = mapped_column(String(255))
    snapshot_id: Mapped[str | None] = mapped_column(String(128))
    finished: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rto_seconds: Mapped[float | None] = mapped_column(Float)
    rto_objective_seconds: Mapped[float | None] = mapped_column(Float)
    data_loss_window_seconds: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_drills_site_env_finished", "site", "env", "finished"),)


class Update(Base):
    """A package one run moved (old -> new version) or an application version it changed."""

    __tablename__ = "updates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    package: Mapped[str] = mapped_column(String(255))
    old_version: Mapped[str | None] = mapped_column(String(128))
    new_version: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (Index("ix_updates_site_env_at", "site", "env", "at"),)


class AuditFinding(Base):
    """A security advisory (or checksum failure) an ``audit`` step reported."""

    __tablename__ = "audit_findings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    package: Mapped[str | None] = mapped_column(String(255))
    severity: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(Text)
    blocking: Mapped[bool] = mapped_column(Boolean, default=False)


class SmokeCheck(Base):
    """One smoke check (an ``http`` step or one check of ``smoke``): URL, status, latency."""

    __tablename__ = "smoke_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)


class Release(Base):
    """A switch of a site's ``current`` release (update, promote, rollback): the release now live."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    release: Mapped[str] = mapped_column(String(128))
    previous: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (Index("ix_releases_site_env_at", "site", "env", "at"),)


class Rollback(Base):
    """A rollback: a host's ``rollback`` section after a failed step, or a ``release`` rollback."""

    __tablename__ = "rollbacks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failed_step: Mapped[str | None] = mapped_column(Text)
    finished: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_rollbacks_site_env_started", "site", "env", "started"),)


class LockWait(Base):
    """Taking an environment's lock on a host: acquired (and after how long), broken, or refused."""

    __tablename__ = "lock_waits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    host: Mapped[str | None] = mapped_column(String(255))
    lock_dir: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    waited_seconds: Mapped[float | None] = mapped_column(Float)
    holder: Mapped[str | None] = mapped_column(Text)


class DiskSpace(Base):
    """Free space of a filesystem on a site's host, read by the ``snapshot`` step (the disk trend).

    ``what`` says whose filesystem it is: ``files`` (the site's folder) or ``database`` (the
    database server's data directory, when the server runs on that host).
    """

    __tablename__ = "disk_space"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_run_fk(), index=True)
    site: Mapped[str] = mapped_column(String(255))
    env: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    what: Mapped[str] = mapped_column(String(32))
    path: Mapped[str | None] = mapped_column(Text)
    mount: Mapped[str | None] = mapped_column(Text)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    free_bytes: Mapped[int] = mapped_column(BigInteger)
    #: the trend reads the last five weeks of every listed site at once (history.trendquery)
    __table_args__ = (Index("ix_disk_space_env_at", "env", "at"),)


#: the row classes of a run's facts, in the order they are written (Run first)
FACT_MODELS: tuple[type[Base], ...] = (
    HostOutcome,
    Snapshot,
    Verification,
    Drill,
    Update,
    AuditFinding,
    SmokeCheck,
    Release,
    Rollback,
    LockWait,
    DiskSpace,
)
