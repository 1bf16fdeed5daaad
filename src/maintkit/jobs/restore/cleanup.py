"""Putting a drill environment back to empty after a drill (the ``drill_cleanup`` action's job).

Destructive by nature, so it touches only what *this* drill run created: the drill's restore
writes the run id into a marker table of its staging database (committed into the target with the
tables) and a marker file into the restored root; a database or root without this run's marker is
left alone (whatever put it there, it was not this drill). It also refuses production by the
inventories' rules (:mod:`maintkit.jobs.restore.guard`).
"""

from __future__ import annotations

from typing import Any

from maintkit.jobs.context import HostContext
from maintkit.jobs.restore import commands, sql
from maintkit.jobs.restore.guard import marked_production, place_of, production_reasons
from maintkit.jobs.restore.source import RestoreSource
from maintkit.model.problems import StepFailed
from maintkit.sources.compression import parse_markers, strip_markers
from maintkit.sources.database import DatabaseSource
from maintkit.sources.files import FilesSource


def clean_drill(
    ctx: HostContext,
    *,
    database: DatabaseSource | None,
    files: FilesSource | None,
    keep: list[str],
    drop_database: bool,
    source: dict[str, Any] | None,
) -> dict[str, str]:
    """Refuse production, then clean the database and the files; return what became of each."""
    _guard(ctx, database, files, source)
    done: dict[str, str] = {}
    if database is not None:
        done["database"] = _database(database, drop_database, ctx)
    if files is not None:
        command = commands.reset_command(files.root, keep, ctx.run_id)
        result = ctx.run(command, timeout=600)
        if result.rc != 0:
            raise StepFailed(f"cleaning {files.root} failed: {strip_markers(result.stderr).strip()}")
        status = parse_markers(result.stderr).get("files", "absent")
        if status == "unmarked":
            status = f"left alone ({files.root} holds no marker of this drill: not its copy)"
        done["files"] = status
    return done


def _guard(
    ctx: HostContext,
    database: DatabaseSource | None,
    files: FilesSource | None,
    source: dict[str, Any] | None,
) -> None:
    host = ctx.host
    place = place_of(
        host.name,
        host.address or host.name,
        host.port,
        host.user,
        files.model_dump() if files else None,
        database.model_dump(by_alias=True) if database else None,
    )
    given = RestoreSource.of_step(source or None, ctx.restore_source)
    sources = given.places() if given else []
    reasons = production_reasons(
        str(ctx.vars["maintkit_env"]), place, marked_production(ctx.vars.get("production")), sources
    )
    if reasons:
        raise StepFailed(f"refusing to clean {host.name}: " + "; ".join(reasons))


def _database(database: DatabaseSource, drop: bool, ctx: HostContext) -> str:
    def run_sql(text: str) -> str:
        command, payload = commands.sql_command(database)
        result = ctx.run(command, stdin=payload + text.encode("utf-8") + b"\n", timeout=600)
        if result.rc != 0:
            raise StepFailed(f"cleaning the database failed: {strip_markers(result.stderr).strip()}")
        return result.stdout

    name = database.name if database.from_ is None else None
    state = sql.parse_target(run_sql(sql.inspect_target_sql(name)))
    staging = sql.staging_name(state.database)
    reads = [sql.read_marker_sql(state.database, "target"), sql.read_marker_sql(staging, "staging")]
    markers = sql.tagged_rows(run_sql("\n".join(reads)))
    ours = [[ctx.run_id]]
    if markers.get("#staging") == ours:  # a staging database this run left behind
        run_sql(f"DROP DATABASE IF EXISTS {sql.name(staging)};")
    if not state.exists:
        return "absent"
    if markers.get("#target") != ours:
        return f"left alone ({state.database} holds no marker of this drill: not its copy)"
    if drop:
        run_sql(f"DROP DATABASE {sql.name(state.database)};")
        return "dropped"
    objects = sql.parse_inspection(run_sql(sql.objects_sql(state.database, "t_"))).target
    run_sql(sql.empty_sql(state.database, objects))
    return "emptied"
