"""``preflight``: before an update moves anything, prove its rollback could run; else refuse.

Why: a rollback that discovers half-way through that it cannot restore (the snapshot unreadable,
no right to create the restore's staging database, a shared path missing) leaves an upgraded
database under the old code: exit 3, a human at 3 a.m. Everything the rollback needs can be checked
before maintenance goes on and before the schema moves, so the update playbooks run this step right
after the pre-update snapshot, and a refusal costs nothing but that snapshot (exit 1, nothing else
changed). Every problem found is reported at once, each with the exact fix (the missing grant as a
``GRANT`` statement, the missing path).

The checks (each only when its parameter is given):

* ``snapshot``: the snapshot is complete in this environment's storage (its manifest reads) and
  every artifact the rollback restores is there with the size the manifest records (a HEAD / stat
  per object), and decryptable on this node when encrypted (the identity file loads).
* ``database``: the database user can do, on the staging database ``NAME_mkrestore``, what the
  restore does: CREATE DATABASE, CREATE TABLE, INSERT, DROP DATABASE. It is tried for real on that
  database only (the live database is never touched). A staging database that already exists is a
  refusal: it is the leftover of a restore that may hold the only restored copy of the tables.
* ``shared`` (with ``root``): ``ROOT/shared/PATH`` exists for every path a new release links.
* ``files_root``: the folder holding it is writable (a files restore extracts beside the root and
  swaps it in with a rename).
* ``engine`` (by default when the host's ``files_engine`` is ``restic``): restic 0.14+ is on the host
  or ``files_engine_install`` can provide it (found without installing anything), and a remote
  port forward carries bytes from the host to the control node (an sshd with
  ``AllowTcpForwarding no`` is named). Run it as a step before the snapshot: ``preflight: {engine: true}``.
"""

from __future__ import annotations

import shlex

from pydantic import Field, field_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.cms.base import ReleaseCms, release_layout
from maintkit.jobs.engine_host import EngineUnavailable, plan_engine
from maintkit.jobs.forward_check import check_remote_forward
from maintkit.jobs.restore import commands, sql
from maintkit.model.problems import MaintkitError
from maintkit.model.results import ActionResult
from maintkit.sources.database import DatabaseSource
from maintkit.sources.script import bash_command, host_path, parse_pairs
from maintkit.storage.encryption import EncryptionError, load_identities
from maintkit.storage.operations import resolve_snapshot
from maintkit.storage.sites import engine_install, site_encryption, site_name, site_targets
from maintkit.updates import releases as rel

#: seconds for each probe on the host
PROBE_TIMEOUT = 120.0


class PreflightParams(ActionParams):
    snapshot: str | None = Field(
        None, description="The snapshot the rollback would restore (id): must be complete and readable."
    )
    database: DatabaseSource | None = Field(
        None,
        description="The database the rollback would restore ({from: magento, root} or explicit "
        "settings): its user must be able to create and drop NAME_mkrestore.",
    )
    root: str | None = Field(None, description="The release root (holds shared/): checks the shared paths.")
    cms: ReleaseCms = Field(
        "magento",
        description="Whose release layout's shared paths to check (as the release action links them).",
    )
    shared: list[str] | None = Field(
        None, description="Paths under ROOT/shared that must exist (default: the cms's list)."
    )
    files_root: str | None = Field(
        None, description="A site root a files restore would replace: its parent must be writable."
    )

    engine: bool | None = Field(
        None,
        description="Check the restic files engine: restic on the host or installable "
        "(files_engine_install), and the remote port forward it writes through. "
        "Default: when the host's files_engine variable is restic.",
    )

    @field_validator("shared")
    @classmethod
    def _relative(cls, value: list[str] | None) -> list[str] | None:
        return [rel.check_relative(p) for p in value] if value is not None else None

    def shared_paths(self) -> list[str]:
        return self.shared if self.shared is not None else list(release_layout(self.cms).shared)


def staging_grant(staging: str, account: str) -> str:
    """The GRANT that lets ``account`` (``user@host`` as CURRENT_USER() prints it) use the staging
    database ``staging``. ``_`` and ``%`` are wildcards in a grant's database name: escaped."""
    pattern = staging.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return f"GRANT ALL PRIVILEGES ON {sql.name(pattern)}.* TO {_account(account)};"


def _account(account: str) -> str:
    """``user@host`` (CURRENT_USER()) as SQL writes an account: ``'user'@'host'``."""
    user, _, host = account.rpartition("@")
    return "'" + user.replace("'", "''") + "'@'" + host.replace("'", "''") + "'"


def probe_sql(staging: str) -> str:
    """What the restore does to its staging database, each statement announced on stdout first
    (the client stops at the first error, so the last announced statement is the one refused)."""
    table = sql.qualified(staging, "mk_preflight")
    statements = [
        ("create database", f"CREATE DATABASE {sql.name(staging)}"),
        ("create table", f"CREATE TABLE {table} (id INT PRIMARY KEY)"),
        ("insert", f"INSERT INTO {table} VALUES (1)"),  # noqa: S608  (identifiers via sql.name)
        ("drop database", f"DROP DATABASE {sql.name(staging)}"),
    ]
    lines = []
    for label, statement in statements:
        lines += [f"SELECT '#step', {sql.literal(label)};", f"{statement};"]
    return "\n".join([*lines, "SELECT '#done', 1;"])


def _shared_command(root: str, paths: list[str]) -> str:
    """Print ``missing=PATH`` for each ``ROOT/shared/PATH`` that does not exist."""
    body = "\n".join(
        [
            f"root={host_path(root)}",
            f"for p in {' '.join(shlex.quote(p) for p in paths)}; do",
            '  [ -e "$root/shared/$p" ] || echo "missing=$root/shared/$p"',
            "done",
        ]
    )
    return bash_command(body)


def _writable_parent_command(root: str) -> str:
    body = "\n".join(
        [
            f"root={host_path(root)}",
            'parent=$(dirname "$(readlink -f "$root" 2>/dev/null || echo "$root")")',
            'echo "parent=$parent"',
            '[ -d "$parent" ] && [ -w "$parent" ] && echo "writable=1" || echo "writable=0"',
        ]
    )
    return bash_command(body)


class Preflight(Action):
    name = "preflight"
    summary = "Before an update: prove its rollback could run (snapshot readable, restore grants, paths)."
    Params = PreflightParams

    def plan(self, params: PreflightParams, ctx: StepContext) -> list[str]:
        plan = []
        if params.snapshot:
            plan.append(f"(control node) snapshot {params.snapshot}: manifest, size of each artifact")
        if params.database:
            plan.append(
                f"create, use and drop the staging database beside {params.database.describe()} "
                "(NAME_mkrestore), as the rollback's restore would"
            )
        if params.root:
            plan.append(_shared_command(params.root, params.shared_paths()))
        if params.files_root:
            plan.append(_writable_parent_command(params.files_root))
        if _checks_engine(params, ctx):
            plan.append("find restic on the host (or how files_engine_install would provide it)")
            plan.append("(control node) remote port forward: read a token from the host through it")
        return plan

    def run(self, params: PreflightParams, ctx: StepContext) -> ActionResult:
        problems: list[str] = []
        checked: list[str] = []
        data: dict[str, object] = {}
        if params.snapshot:
            problems += self._snapshot(params.snapshot, ctx)
            checked.append(f"snapshot {params.snapshot} readable")
        if params.database:
            found, staging = self._database(params.database, ctx)
            problems += found
            data["staging_database"] = staging
            checked.append(f"staging database {staging or '?'} can be created and dropped")
        if params.root:
            problems += self._shared(params.root, params.shared_paths(), ctx)
            checked.append("shared paths present")
        if params.files_root:
            problems += self._parent(params.files_root, ctx)
            checked.append("files root replaceable")
        engine_problems: list[str] = []
        if _checks_engine(params, ctx):
            engine_problems, detail = self._engine(ctx)
            data["engine"] = detail
            checked.append(f"files engine: {detail}, remote port forward works")
        data["problems"] = problems + engine_problems
        if problems or engine_problems:
            header = (
                "refusing to update: its rollback could not run:"
                if problems
                else "refusing to go on: the restic files engine could not run:"
            )
            return ActionResult(
                failed=True,
                msg=header + "".join(f"\n    - {problem}" for problem in problems + engine_problems),
                data=data,
            )
        rollback_checks = len(checked) - (1 if "engine" in data else 0)
        lead = "the rollback could run: " if rollback_checks else ""
        return ActionResult(msg=lead + ", ".join(checked), data=data)

    def _engine(self, ctx: StepContext) -> tuple[list[str], str]:
        """The engine's plan (nothing installed) and the forward's round trip; problems, one-line detail."""
        problems = []
        try:
            plan = plan_engine(ctx, install=engine_install(ctx.vars, ctx.redactor))
            if plan.problem:
                problems.append(plan.problem)
            detail = plan.detail
        except EngineUnavailable as error:
            problems.append(str(error))
            detail = "not found"
        forward = check_remote_forward(ctx)
        if forward:
            problems.append(forward)
        return problems, detail

    def _snapshot(self, snapshot_id: str, ctx: StepContext) -> list[str]:
        site, env = site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        errors = []
        for target in site_targets(ctx.vars, None, ctx.redactor):
            try:
                manifest = resolve_snapshot(target, site, env, snapshot_id)
                for artifact in manifest.artifacts:
                    size = target.size(artifact.key)
                    if size != artifact.size:
                        raise MaintkitError(
                            f"{artifact.key} holds {size} bytes in target {target.name}, "
                            f"the manifest says {artifact.size}"
                        )
                encrypted = [a for a in manifest.artifacts if a.encryption != "none"]
                if encrypted:
                    encryption = site_encryption(ctx.vars, ctx.redactor)
                    path = encryption.identity_file if encryption else None
                    if path is None:
                        raise MaintkitError(
                            f"{encrypted[0].name} is encrypted and no encryption.identity_file is set"
                        )
                    load_identities(str(path))
                return []  # one readable copy is what the restore needs
            except (MaintkitError, EncryptionError, OSError) as error:
                errors.append(str(error))
        return [f"snapshot {snapshot_id} cannot be read back: " + ("; ".join(errors) or "no storage target")]

    def _database(self, database: DatabaseSource, ctx: StepContext) -> tuple[list[str], str | None]:
        command, payload = commands.sql_command(database)
        inspect = "SELECT '#database', @mk_db;\nSELECT '#account', CURRENT_USER();"
        result = ctx.run(command, stdin=payload + inspect.encode() + b"\n", timeout=PROBE_TIMEOUT)
        if result.rc != 0:
            return [f"cannot log in to {database.describe()}: {_stderr(result.stderr)}"], None
        rows = sql.tagged_rows(result.stdout)
        name = rows.get("#database", [[""]])[0][0]
        account = rows.get("#account", [[""]])[0][0]
        staging = sql.staging_name(name)
        exists = ctx.run(
            command,
            stdin=payload
            + f"SELECT '#exists', COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "  # noqa: S608
            f"{sql.literal(staging)};\n".encode(),
            timeout=PROBE_TIMEOUT,
        )
        if exists.rc == 0 and sql.tagged_rows(exists.stdout).get("#exists", [["0"]])[0][0] != "0":
            return [
                f"the staging database {staging} exists already (left by an earlier restore; it may "
                "hold the only restored copy of the tables): look at it, then drop it"
            ], staging
        probe = ctx.run(command, stdin=payload + probe_sql(staging).encode() + b"\n", timeout=PROBE_TIMEOUT)
        if probe.rc == 0 and "#done" in probe.stdout:
            return [], staging
        steps = sql.tagged_rows(probe.stdout).get("#step", [])
        refused = steps[-1][0] if steps else "create database"
        problems = [
            f"the database user {_account(account)} cannot {refused.upper()} on the staging database "
            f"{staging} that the rollback's restore loads the snapshot into ({_stderr(probe.stderr)}); "
            f"grant it: {staging_grant(staging, account)}"
        ]
        if refused != "create database":  # the probe created it: remove it, or say it is left
            dropped = ctx.run(
                command,
                stdin=payload + f"DROP DATABASE IF EXISTS {sql.name(staging)};\n".encode(),
                timeout=PROBE_TIMEOUT,
            )
            if dropped.rc != 0:
                problems.append(f"the probe left the empty database {staging}: drop it once granted")
        return problems, staging

    def _shared(self, root: str, paths: list[str], ctx: StepContext) -> list[str]:
        if not paths:
            return []
        result = ctx.run(_shared_command(root, paths), timeout=PROBE_TIMEOUT)
        missing = [
            line.partition("=")[2] for line in result.stdout.splitlines() if line.startswith("missing=")
        ]
        if result.rc != 0:
            return [f"checking the shared paths of {root} failed: {_stderr(result.stderr)}"]
        return [f"shared path missing: {path} (create it)" for path in missing]

    def _parent(self, root: str, ctx: StepContext) -> list[str]:
        result = ctx.run(_writable_parent_command(root), timeout=PROBE_TIMEOUT)
        pairs = parse_pairs(result.stdout)
        if pairs.get("writable") == "1":
            return []
        return [
            f"{pairs.get('parent', 'the folder holding ' + root)} is not writable by the login user: "
            f"a files restore extracts beside {root} and swaps it in"
        ]


def _checks_engine(params: PreflightParams, ctx: StepContext) -> bool:
    if params.engine is not None:
        return params.engine
    return str(ctx.vars.get("files_engine") or "tar") == "restic"


def _stderr(text: str) -> str:
    """The client's error lines (``ERROR 1044 ...``), without the statement it echoes around them."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("maintkit:")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return " ".join(errors or lines)[-500:] or "no message"
