"""``smoke``: a list of ``http`` checks in one step (a site's smoke checks, from a ``smoke:`` variable).

Why a list action: the engine has no loops, and a drill runs whatever checks each site declares
(``smoke: [{url: …, contains: …}, …]`` in the inventory). Every check runs, even after one failed,
so the report shows them all; the step fails when any failed, or when there is none and
``required`` (a drill without smoke checks proves nothing about the shop).
"""

from __future__ import annotations

import time

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.actions.http import Http, HttpParams
from maintkit.jobs.restore.record import now_iso
from maintkit.model.results import ActionResult


class SmokeCheck(HttpParams):
    name: str | None = Field(None, description="What the check proves (default: its URL).")


class SmokeParams(ActionParams):
    checks: list[SmokeCheck] = Field(
        default_factory=list, description="http checks: {url, status, contains...}."
    )
    required: bool = Field(True, description="Fail when there is no check.")


class Smoke(Action):
    name = "smoke"
    summary = "Run a list of http smoke checks from the control node; fail if any fails."
    idempotent = True  # it only reads pages
    Params = SmokeParams
    shorthand = "checks"
    local_only = True

    def plan(self, params: SmokeParams, ctx: StepContext) -> list[str]:
        http = Http()
        return [line for check in params.checks for line in http.plan(check, ctx)] or ["(no smoke checks)"]

    def run(self, params: SmokeParams, ctx: StepContext) -> ActionResult:
        if not params.checks:
            return ActionResult(
                failed=params.required,
                skipped=not params.required,
                msg="no smoke checks configured (set `smoke:` for the host)",
                data={"checks": []},
            )
        http = Http()
        results = []
        for check in params.checks:
            started, clock = now_iso(), time.monotonic()
            result = http.run(check, ctx)
            results.append(
                {
                    "name": check.name or f"{check.method} {check.url}",
                    "url": check.url,
                    "ok": not result.failed,
                    "status": result.data.get("status"),
                    "latency_ms": result.data.get("latency_ms"),
                    "msg": result.msg,
                    "started": started,
                    "seconds": round(time.monotonic() - clock, 3),
                }
            )
        failed = [r for r in results if not r["ok"]]
        msg = (
            "; ".join(f"{r['name']}: {r['msg']}" for r in failed)
            if failed
            else f"{len(results)} smoke check(s) passed"
        )
        return ActionResult(failed=bool(failed), msg=msg, data={"checks": results})
