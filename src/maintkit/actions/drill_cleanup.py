"""``drill_cleanup``: put a drill environment back to empty after a drill (unless ``--keep``).

The database: dropped when the drill created it, else emptied (every table, view, routine and
event dropped; the grant-holding database itself stays); a leftover staging database is dropped.
The files: the root keeps only its ``keep`` paths (the drill's own ``env.php``, so the next drill's
copy again runs with the drill's settings), or goes entirely when there are none.

Destructive by nature, so it touches only what *this* drill run created: the drill's ``restore``
writes the run id into a marker table of its staging database (committed into the target with the
tables) and a marker file into the restored root; a database or root without this run's marker is
left alone (whatever put it there, it was not this drill). It also refuses production by the
inventories' rules (:mod:`maintkit.restore.guard`), and the shipped playbook runs it only when the
restore staged something of its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.problems import StepFailed
from maintkit.model.results import ActionResult
from maintkit.restore import commands, sql
from maintkit.restore.guard import marked_production, place_of, production_reasons
from maintkit.restore.source import RestoreSource
from maintkit.sources.appconfig import CONFIG_FILES
from maintkit.sources.compression import parse_markers, strip_markers
from maintkit.sources.database import DatabaseSource
from maintkit.sources.files import FilesSource


class DrillCleanupParams(ActionParams):
    database: DatabaseSource | None = Field(None, description="The drill's database.")
    files: FilesSource | None = Field(None, description="The drill's files: {root, cms}.")
    source: dict[str, Any] | None = Field(None, description="The drill's source (for the production guard).")
    drop_database: bool = Field(
        False, description="Drop the database (the drill created it) instead of emptying it."
    )
    keep: list[str] | None = Field(
        None, description="Paths under root to keep (default: the cms's config file)."
    )


class DrillCleanup(Action):
    name = "drill_cleanup"
    summary = "Empty a drill environment: drop (or empty) its database, reset its files."
    Params = DrillCleanupParams

    def plan(self, params: DrillCleanupParams, ctx: StepContext) -> list[str]:
        plan = []
        if params.database:
            verb = "drop" if params.drop_database else "empty"
            plan.append(f"{verb} the database {params.database.describe()} and its staging database")
        if params.files:
            plan.append(f"reset {params.files.root} to its kept paths ({', '.join(_keep(params)) or 'none'})")
        return plan

    def run(self, params: DrillCleanupParams, ctx: StepContext) -> ActionResult:
        self._guard(params, ctx)
        done: dict[str, str] = {}
        if params.database is not None:
            done["database"] = self._database(params.database, params.drop_database, ctx)
        if params.files is not None:
            command = commands.reset_command(params.files.root, _keep(params), ctx.run_id)
            result = ctx.run(command, timeout=600)
            if result.rc != 0:
                raise StepFailed(
                    f"cleaning {params.files.root} failed: {strip_markers(result.stderr).strip()}"
                )
            status = parse_markers(result.stderr).get("files", "absent")
            if status == "unmarked":
                status = f"left alone ({params.files.root} holds no marker of this drill: not its copy)"
            done["files"] = status
        return ActionResult(
            changed=True, msg=", ".join(f"{k} {v}" for k, v in done.items()) or "nothing to clean", data=done
        )

    def _guard(self, params: DrillCleanupParams, ctx: StepContext) -> None:
        host = ctx.host
        place = place_of(
            host.name,
            host.address or host.name,
            host.port,
            host.user,
            params.files.model_dump() if params.files else None,
            params.database.model_dump(by_alias=True) if params.database else None,
        )
        sources = RestoreSource.from_value(params.source).places() if params.source else []
        reasons = production_reasons(
            str(ctx.vars["maintkit_env"]), place, marked_production(ctx.vars.get("production")), sources
        )
        if reasons:
            raise StepFailed(f"refusing to clean {host.name}: " + "; ".join(reasons))

    def _database(self, database: DatabaseSource, drop: bool, ctx: StepContext) -> str:
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


def _keep(params: DrillCleanupParams) -> list[str]:
    if params.keep is not None:
        return params.keep
    if params.files is not None and params.files.cms in CONFIG_FILES:
        return [CONFIG_FILES[params.files.cms]]
    return []
