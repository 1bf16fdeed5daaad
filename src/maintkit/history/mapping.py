"""From a run's journal events to the history's rows: a pure function, no database, no I/O.

Why pure: the same mapping serves the live recording (events as the run emits them) and ``maintkit
history import`` (events read back from a journal file), so a re-import yields exactly the rows the
live run wrote. The rows are plain dicts keyed by the model's column names (:mod:`.models`), so this
module imports no SQLAlchemy and its tests need no database.

Which host is which site: ``run_start`` names each host's site (``sites``); journals written before
that field fall back to the host's name, as :func:`maintkit.storage.sites.site_name` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maintkit.history.schema import FLEET_COMMAND

#: the events the mapping reads; the live sink keeps only these (progress and output lines are many)
MAPPED_EVENTS = frozenset(
    {
        "run_start",
        "run_end",
        "host_end",
        "step_end",
        "rollback_start",
        "lock_acquired",
        "lock_shared",
        "lock_broken",
        "drill_report",
    }
)


@dataclass
class RunRecord:
    """One run's rows: the ``runs`` row and, per table name, the rows of its facts."""

    run: dict[str, Any]
    facts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.facts.setdefault(table, []).append(row)

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.facts.get(table, [])


def parse_ts(value: Any) -> datetime | None:
    """An event's ISO timestamp as an aware datetime in UTC (None for a missing or unreadable one).

    In UTC because SQLite keeps a datetime's wall time only: the history reads it back as UTC.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database as aware UTC (SQLite returns them naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def map_run(events: Iterable[dict[str, Any]], journal_path: str | None = None) -> RunRecord | None:
    """Given the events of one run (in order), return its rows; None when there is no ``run_start``.

    A run without ``run_end`` (still running, or killed) maps to status ``unfinished`` with no
    ``finished``: that is how ``status`` sees who holds a lock now, and which rollback never ended.
    """
    mapper = _Mapper(journal_path)
    for event in events:
        mapper.feed(event)
    return mapper.record


class _Mapper:
    """The state of one mapping pass: the run row, who each host is, what is pending per host."""

    def __init__(self, journal_path: str | None) -> None:
        self.journal_path = journal_path
        self.record: RunRecord | None = None
        self.sites: dict[str, str] = {}
        self.env = ""
        self.started: datetime | None = None
        self.rollbacks: dict[str, dict[str, Any]] = {}

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run_start":
            self._start(event)
            return
        if self.record is None or kind not in MAPPED_EVENTS:
            return
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def _site(self, host: Any) -> str:
        return self.sites.get(str(host), str(host))

    def _base(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"site": self._site(event.get("host")), "env": self.env}

    def _start(self, event: dict[str, Any]) -> None:
        hosts = [str(h) for h in event.get("hosts") or []]
        self.sites = {h: str(s) for h, s in (event.get("sites") or {}).items()}
        self.env = str(event.get("env") or "")
        self.started = parse_ts(event.get("ts")) or datetime.now(UTC)
        self.record = RunRecord(
            {
                "id": str(event["run_id"]),
                "command": event.get("command"),
                "playbook": event.get("playbook"),
                "env": event.get("env"),
                "sites": sorted({self._site(h) for h in hosts}),
                "started": self.started,
                "finished": None,
                "status": "unfinished",
                "exit_code": None,
                "check": bool(event.get("check", False)),
                "error": None,
                "control_host": event.get("control_host"),
                "control_pid": event.get("pid"),
                "journal_path": self.journal_path,
            }
        )

    def _on_run_end(self, event: dict[str, Any]) -> None:
        assert self.record is not None
        self.record.run.update(
            finished=parse_ts(event.get("ts")),
            status=event.get("status") or "unknown",
            exit_code=event.get("exit_code"),
            error=event.get("error"),
        )
        refused = event.get("exit_code") == 4 and event.get("error")  # the lock was held by another run
        if refused and self.record.run["command"] != FLEET_COMMAND:  # a fleet's 4 is one of its sites'
            self.record.add(
                "lock_waits",
                {
                    "host": None,
                    "lock_dir": None,
                    "outcome": "refused",
                    "waited_seconds": None,
                    "holder": event["error"],
                },
            )

    def _on_host_end(self, event: dict[str, Any]) -> None:
        assert self.record is not None
        host = str(event.get("host"))
        status = str(event.get("status"))
        self.record.add(
            "host_outcomes",
            {
                **self._base(event),
                "host": host,
                "status": status,
                "duration": event.get("duration"),
                "failed_step": event.get("failed_step"),
            },
        )
        rollback = self.rollbacks.pop(host, None)
        if rollback is not None:
            rollback["finished"] = status == "rolled_back"
            rollback["detail"] = status

    def _on_rollback_start(self, event: dict[str, Any]) -> None:
        assert self.record is not None
        row = {
            **self._base(event),
            "host": str(event.get("host")),
            "started": parse_ts(event.get("ts")),
            "failed_step": event.get("failed_step"),
            "finished": False,
            "detail": "unfinished",
        }
        self.rollbacks[str(event.get("host"))] = row
        self.record.add("rollbacks", row)

    def _lock(self, event: dict[str, Any], outcome: str) -> None:
        assert self.record is not None
        at, began = parse_ts(event.get("ts")), self.started
        waited = round((at - began).total_seconds(), 3) if at and began else None
        holder = event.get("previous_holder")
        self.record.add(
            "lock_waits",
            {
                "host": event.get("host"),
                "lock_dir": event.get("lock_dir"),
                "outcome": outcome,
                "waited_seconds": waited,
                "holder": str(holder) if holder else None,
            },
        )

    def _on_lock_acquired(self, event: dict[str, Any]) -> None:
        self._lock(event, "acquired")

    def _on_lock_shared(self, event: dict[str, Any]) -> None:
        self._lock(event, "shared")

    def _on_lock_broken(self, event: dict[str, Any]) -> None:
        self._lock(event, "broken")

    def _on_drill_report(self, event: dict[str, Any]) -> None:
        assert self.record is not None
        at = parse_ts(event.get("ts"))
        for host in event.get("hosts") or []:
            self.record.add(
                "drills",
                {
                    "site": host.get("site") or self._site(host.get("host")),
                    "env": event.get("source_env") or self.env,
                    "drill_env": self.env,
                    "snapshot_id": host.get("snapshot_id"),
                    "finished": at,
                    "rto_seconds": host.get("rto_seconds"),
                    "rto_objective_seconds": event.get("rto_objective_seconds"),
                    "data_loss_window_seconds": host.get("data_loss_window_seconds"),
                    "passed": bool(event.get("passed")),
                    "summary": event.get("summary"),
                },
            )

    def _on_step_end(self, event: dict[str, Any]) -> None:
        status = event.get("status")
        if status in ("skipped", "planned") or event.get("run_once"):
            return
        action = event.get("action")
        data = event.get("data") or {}
        mapper = getattr(self, f"_step_{action}", None)
        if mapper is not None and isinstance(data, dict):
            mapper(event, data, status not in ("failed", "ignored"))

    def _step_snapshot(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        assert self.record is not None
        if not ok or not data.get("snapshot_id"):
            return
        self.record.add(
            "snapshots",
            {
                **self._base(event),
                "snapshot_id": str(data["snapshot_id"]),
                "host": str(event.get("host")),
                "taken": parse_ts(event.get("ts")),
                "size": int(data.get("bytes") or 0),
                "artifacts": data.get("artifacts") or {},
                "targets": data.get("targets") or {},
                "engine": data.get("engine"),
            },
        )
        for reading in data.get("disk") or []:
            if isinstance(reading, dict) and isinstance(reading.get("free"), int):
                self.record.add(
                    "disk_space",
                    {
                        **self._base(event),
                        "host": str(event.get("host")),
                        "at": parse_ts(event.get("ts")),
                        "what": str(reading.get("what")),
                        "path": reading.get("path"),
                        "mount": reading.get("mount"),
                        "total_bytes": int(reading.get("total") or 0),
                        "free_bytes": int(reading["free"]),
                    },
                )

    def _step_verify(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        assert self.record is not None
        self.record.add(
            "verifications",
            {
                **self._base(event),
                "snapshot_id": data.get("snapshot_id") or None,
                "checked": parse_ts(event.get("ts")),
                "ok": ok,
                "targets": data.get("targets") or {},
                "message": event.get("msg"),
            },
        )

    def _update(self, event: dict[str, Any], package: Any, old: Any, new: Any) -> None:
        assert self.record is not None
        self.record.add(
            "updates",
            {
                **self._base(event),
                "at": parse_ts(event.get("ts")),
                "package": str(package),
                "old_version": None if old is None else str(old),
                "new_version": None if new is None else str(new),
            },
        )

    def _step_composer(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        for move in data.get("moved") or []:
            if ok and isinstance(move, dict):
                self._update(event, move.get("package"), move.get("old"), move.get("new"))

    def _step_wp(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        for row in data.get("updated") or []:
            if ok and isinstance(row, dict):
                self._update(event, row.get("name"), row.get("old"), row.get("new"))

    def _step_prestashop(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        if ok and data.get("version") and data.get("version") != data.get("version_before"):
            self._update(event, "prestashop", data.get("version_before"), data["version"])

    def _step_audit(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        assert self.record is not None
        at = parse_ts(event.get("ts"))
        for advisory in data.get("advisories") or []:
            self.record.add(
                "audit_findings",
                {
                    **self._base(event),
                    "at": at,
                    "package": advisory.get("package"),
                    "severity": advisory.get("severity"),
                    "title": advisory.get("title"),
                    "blocking": not ok,
                },
            )
        for failure in data.get("failures") or []:
            self.record.add(
                "audit_findings",
                {
                    **self._base(event),
                    "at": at,
                    "package": None,
                    "severity": "checksum",
                    "title": str(failure),
                    "blocking": not ok,
                },
            )

    def _smoke(self, event: dict[str, Any], url: Any, status: Any, latency: Any, ok: bool) -> None:
        assert self.record is not None
        self.record.add(
            "smoke_checks",
            {
                **self._base(event),
                "at": parse_ts(event.get("ts")),
                "url": str(url),
                "status": status if isinstance(status, int) else None,
                "latency_ms": latency if isinstance(latency, int | float) else None,
                "ok": ok,
            },
        )

    def _step_http(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        if data.get("url"):
            self._smoke(event, data["url"], data.get("status"), data.get("latency_ms"), ok)

    def _step_smoke(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        for check in data.get("checks") or []:
            if isinstance(check, dict) and check.get("url"):
                self._smoke(
                    event, check["url"], check.get("status"), check.get("latency_ms"), bool(check.get("ok"))
                )

    def _step_release(self, event: dict[str, Any], data: dict[str, Any], ok: bool) -> None:
        assert self.record is not None
        if not ok:
            return
        if "switched" in data:  # op: rollback
            if data.get("switched") and data.get("current"):
                self._release(event, data["current"], data.get("previous"))
        elif data.get("id") and data.get("previous") is not None and "path" not in data:  # op: switch
            self._release(event, data["id"], data.get("previous"))

    def _release(self, event: dict[str, Any], release: Any, previous: Any) -> None:
        assert self.record is not None
        self.record.add(
            "releases",
            {
                **self._base(event),
                "at": parse_ts(event.get("ts")),
                "release": str(release),
                "previous": None if previous is None else str(previous),
            },
        )
