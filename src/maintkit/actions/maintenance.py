"""``maintenance``: put a shop in maintenance and take it out again, whatever the CMS, as it was found.

* Magento: ``bin/magento maintenance:status|enable|disable`` in each ``root`` (the flag lives in
  the release's ``var/``, so an update enables it in ``current`` *and* in the new release: the
  site stays in maintenance across the switch until the cache flush is done; deployer#1968).
* WordPress: ``wp maintenance-mode is-active|activate --force|deactivate`` (off tolerates a site
  that WordPress's upgrader has already taken out of maintenance).
* PrestaShop: the ``PS_SHOP_ENABLE`` setting (0 in maintenance), read and written with the shop's
  own database credentials from ``app/config/parameters.php`` (never on a command line).

``state: on`` reports ``was_on``; give it back to ``state: off`` (``was_on: "{{ m.was_on }}"``) and
a shop that was already in maintenance before the run stays in maintenance (capistrano-magento2's
rule; deployer#2936 is the complaint when a tool does not).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.cms.base import MaintenanceCli, MaintenanceCms, MaintenanceSetting, get
from maintkit.model.results import ActionResult
from maintkit.sources.appconfig import read_db_config_snippet
from maintkit.sources.script import bash_command, heredoc, host_path


class MaintenanceParams(ActionParams):
    cms: MaintenanceCms = Field(description="A CMS whose profile has a maintenance mode.")
    state: Literal["on", "off"] = Field(description="on | off.")
    root: list[str] = Field(description="The shop's root, or several (Magento: current and the new release).")
    was_on: bool = Field(False, description="off: the shop was in maintenance before the run: leave it on.")
    php: str = Field("php", description="The PHP program on the host (Magento).")
    wp: str = Field("wp", description="The wp-cli program on the host (WordPress).")
    table_prefix: str = Field("ps_", description="PrestaShop's table prefix.")

    @field_validator("root", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("a table prefix has letters, digits and _ only")
        return value


def status_command(p: MaintenanceParams, root: str) -> str:
    """Exit 0 when ``root`` is in maintenance, 1 when not, anything else on error."""
    how = _mechanism(p)
    if isinstance(how, MaintenanceCli):
        return how.status(_program(p, how), root, host_path)
    sql = how.status_sql.format(prefix=p.table_prefix)
    return _shop_sql(p, root, sql, f'case "$out" in *{how.active_value}*) exit 0;; *) exit 1;; esac')


def set_command(p: MaintenanceParams, root: str, on: bool) -> str:
    how = _mechanism(p)
    if isinstance(how, MaintenanceCli):
        return how.switch(_program(p, how), root, on, host_path)
    # the prefix is checked (letters, digits, _), the values are the profile's constants
    return _shop_sql(p, root, (how.on_sql if on else how.off_sql).format(prefix=p.table_prefix), "exit 0")


def _mechanism(p: MaintenanceParams) -> MaintenanceCli | MaintenanceSetting:
    how = get(p.cms).maintenance
    assert how is not None  # the parameter type admits only CMSs with a maintenance mode
    return how


def _program(p: MaintenanceParams, how: MaintenanceCli) -> str:
    return p.php if how.program_param == "php" else p.wp


def _shop_sql(p: MaintenanceParams, root: str, sql: str, then: str) -> str:
    """Run ``sql`` in the shop's database with its own credentials (read from its config on the
    host: never on a command line), then ``then`` with the output in ``$out``."""
    body = "\n".join(
        [
            "set -o pipefail",
            "umask 077",
            "f=$(mktemp) || exit 1",
            "trap 'rm -f \"$f\"' EXIT",
            read_db_config_snippet(p.cms, root),
            'exec 3<"$f" && rm -f "$f"',
            "client=$(command -v mariadb || command -v mysql) || "
            "{ echo 'maintkit: no mysql client' >&2; exit 127; }",
            'out=$("$client" --defaults-file=/dev/fd/3 --batch --skip-column-names -e "$(cat '
            + heredoc("MAINTKIT_SQL", sql)
            + '\n)" -- "$db") || exit 3',
            then,
        ]
    )
    return bash_command(body)


class Maintenance(Action):
    name = "maintenance"
    summary = "Maintenance mode on/off for Magento, WordPress or PrestaShop, restoring the state it found."
    Params = MaintenanceParams

    def plan(self, params: MaintenanceParams, ctx: StepContext) -> list[str]:
        if params.state == "off" and params.was_on:
            return [f"(leave maintenance on: it was on before the run) {params.root}"]
        plan = [status_command(params, params.root[0])] if params.state == "on" else []
        return plan + [set_command(params, root, params.state == "on") for root in params.root]

    def run(self, params: MaintenanceParams, ctx: StepContext) -> ActionResult:
        if params.state == "off" and params.was_on:
            return ActionResult(
                msg="left in maintenance: it was in maintenance before the run", data={"was_on": True}
            )
        was_on = False
        if params.state == "on":
            status = ctx.run(status_command(params, params.root[0]))
            if status.rc not in (0, 1):
                return ActionResult(
                    failed=True,
                    rc=status.rc,
                    stderr=status.stderr,
                    msg=f"reading the maintenance state failed (exit status {status.rc}): "
                    f"{status.stderr.strip()[-500:]}",
                )
            was_on = status.rc == 0
        for root in params.root:
            result = ctx.run(set_command(params, root, params.state == "on"))
            if result.rc != 0:
                return ActionResult(
                    failed=True,
                    rc=result.rc,
                    stdout=result.stdout,
                    stderr=result.stderr,
                    msg=f"maintenance {params.state} failed in {root} (exit status {result.rc})",
                    data={"was_on": was_on},
                )
        where = ", ".join(params.root)
        return ActionResult(
            changed=True,
            msg=f"maintenance {params.state} ({where})" + (" (it was already on)" if was_on else ""),
            data={"was_on": was_on},
        )
