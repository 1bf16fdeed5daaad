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

import shlex
from typing import Literal

from pydantic import Field, field_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult
from maintkit.sources.appconfig import read_db_config_snippet
from maintkit.sources.script import bash_command, heredoc, host_path


class MaintenanceParams(ActionParams):
    cms: Literal["magento", "wordpress", "prestashop"] = Field(
        description="magento | wordpress | prestashop."
    )
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
    if p.cms == "magento":
        return (
            f"cd {host_path(root)} && "
            f"out=$({shlex.quote(p.php)} bin/magento maintenance:status --no-interaction) "
            '&& case "$out" in *"is active"*) exit 0;; *) exit 1;; esac'
        )
    if p.cms == "wordpress":
        return shlex.join([p.wp, "maintenance-mode", "is-active", f"--path={root}"])
    sql = f"SELECT value FROM {p.table_prefix}configuration WHERE name = 'PS_SHOP_ENABLE'"  # noqa: S608
    return _prestashop(p, root, sql, 'case "$out" in *0*) exit 0;; *) exit 1;; esac')


def set_command(p: MaintenanceParams, root: str, on: bool) -> str:
    if p.cms == "magento":
        verb = "maintenance:enable" if on else "maintenance:disable"
        return f"cd {host_path(root)} && {shlex.quote(p.php)} bin/magento {verb} --no-interaction"
    if p.cms == "wordpress":
        path = f"--path={root}"
        if on:  # --force: plain activate fails when maintenance is already on
            return shlex.join([p.wp, "maintenance-mode", "activate", "--force", path])
        # deactivate fails ("already deactivated") when WordPress's upgrader has already removed
        # .maintenance, as it does at the end of every core or active plugin/theme update
        status = shlex.join([p.wp, "maintenance-mode", "is-active", path])
        return (
            f"{status}; rc=$?; if [ $rc -eq 0 ]; then "
            f"{shlex.join([p.wp, 'maintenance-mode', 'deactivate', path])}; "
            "elif [ $rc -ne 1 ]; then exit $rc; fi"
        )
    value = "0" if on else "1"
    # the prefix is checked (letters, digits, _), the value is a constant
    sql = f"UPDATE {p.table_prefix}configuration SET value = '{value}' WHERE name = 'PS_SHOP_ENABLE'"  # noqa: S608
    return _prestashop(p, root, sql, "exit 0")


def _prestashop(p: MaintenanceParams, root: str, sql: str, then: str) -> str:
    body = "\n".join(
        [
            "set -o pipefail",
            "umask 077",
            "f=$(mktemp) || exit 1",
            "trap 'rm -f \"$f\"' EXIT",
            read_db_config_snippet("prestashop", root),
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
