"""``drill_cleanup``: put a drill environment back to empty after a drill (unless ``--keep``).

The database: dropped when the drill created it, else emptied (every table, view, routine and
event dropped; the grant-holding database itself stays); a leftover staging database is dropped.
The files: the root keeps only its ``keep`` paths (the drill's own ``env.php``, so the next drill's
copy again runs with the drill's settings), or goes entirely when there are none.

Destructive by nature, so it touches only what *this* drill run created: the drill's ``restore``
writes the run id into a marker table of its staging database (committed into the target with the
tables) and a marker file into the restored root; a database or root without this run's marker is
left alone (whatever put it there, it was not this drill). It also refuses production by the
inventories' rules, and the shipped playbook runs it only when the restore staged something of its
own. The work is :func:`maintkit.jobs.restore.cleanup.clean_drill`; this module is its adapter.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.cms.base import config_file
from maintkit.jobs.restore.cleanup import clean_drill
from maintkit.model.results import ActionResult
from maintkit.sources.database import DatabaseSource
from maintkit.sources.files import FilesSource


class DrillCleanupParams(ActionParams):
    database: DatabaseSource | None = Field(None, description="The drill's database.")
    files: FilesSource | None = Field(None, description="The drill's files: {root, cms}.")
    source: dict[str, Any] | None = Field(
        None, description="The drill's source, for the production guard (default: 'maintkit drill''s)."
    )
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
        done = clean_drill(
            ctx,
            database=params.database,
            files=params.files,
            keep=_keep(params),
            drop_database=params.drop_database,
            source=params.source,
        )
        return ActionResult(
            changed=True, msg=", ".join(f"{k} {v}" for k, v in done.items()) or "nothing to clean", data=done
        )


def _keep(params: DrillCleanupParams) -> list[str]:
    if params.keep is not None:
        return params.keep
    config = config_file(params.files.cms) if params.files is not None else None
    return [config] if config else []
