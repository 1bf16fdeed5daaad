"""``maintkit snapshots list | show | verify | prune``: the stored snapshots of an environment.

These commands read the inventory (for each host: its site name, storage targets and retention)
and talk to storage from the control node only; no host is contacted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from maintkit.cli.execute import Where, fail_invalid, split_values, target_options


@dataclass
class SiteStorage:
    """One site of an environment with its storage targets, as the snapshots commands read it."""

    name: str
    env: str
    variables: Any
    targets: list[Any]


def _sites(where: Where, target: tuple[str, ...]) -> list[SiteStorage]:
    """Every site of the inventory (one per distinct site name) with its selected targets.

    Every selected host's ``storage``, ``retention`` and ``encryption`` are checked first, as
    ``maintkit validate`` checks them: a mistake there is invalid input (exit 2, file:line), whichever
    subcommand meets it. An unknown ``--target`` is a usage error (exit 2).
    """
    from maintkit.config.inventory import load_inventory_with_origins
    from maintkit.config.variables import host_vars
    from maintkit.model.problems import InvalidInput, StepFailed
    from maintkit.secrets import Redactor
    from maintkit.storage.sites import check_sites, site_name, site_targets

    where.require()
    try:
        inv, origins = load_inventory_with_origins(where.env, where.inventory, Path.cwd())
        hosts = inv.select(split_values(where.limit)) if where.limit else list(inv.hosts.values())
        if not hosts:
            raise click.UsageError(f"--limit {','.join(where.limit)} matches no host of {inv.name}")
        variables = [host_vars(inv, host) for host in hosts]
        problems = check_sites(variables, inv.path, Redactor(), origins)
        if problems:
            raise InvalidInput(problems)
        sites: dict[str, SiteStorage] = {}
        for one in variables:
            name = site_name(one)
            if name not in sites:
                targets = site_targets(one, split_values(target) or None)
                sites[name] = SiteStorage(name, inv.name, one, targets)
        return list(sites.values())
    except InvalidInput as error:
        fail_invalid(error)
    except StepFailed as error:
        raise click.UsageError(str(error)) from error


def _options(function: Any) -> Any:
    """The environment options and ``--target``, shared by every subcommand."""
    target = click.option("--target", "-t", multiple=True, help="Only these storage targets.")
    return target_options(target(function))


@click.group()
def snapshots() -> None:
    """The snapshots of an environment: list, show, verify, prune."""


@snapshots.command("list")
@_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def list_(where: Where, target: tuple[str, ...], output: str) -> None:
    """List snapshots, newest first: id, time, size, state, the targets holding them.

    State: ``verified`` (the last verification passed in every target), ``complete`` (never
    verified), ``verify failed`` (with the reason), ``UNFINISHED`` (no manifest), or ``PROBLEM`` (the
    manifest does not read). JSON rows carry ``state``, ``verified`` and ``problem`` (the reason).
    """
    from rich.table import Table

    from maintkit.reporting.terminal import make_console

    rows = list(_rows(_sites(where, target)))
    if output == "json":
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(show_edge=False)
    for column in ("site", "snapshot", "time (UTC)", "size", "state", "targets"):
        table.add_column(column, no_wrap=column != "targets")
    for row in rows:
        state = row["state"] if row["state"] != "unfinished" else "UNFINISHED"
        if row["problem"]:
            state = f"PROBLEM: {row['problem']}" if row["state"] == "problem" else row["problem"]
        table.add_row(
            row["site"],
            row["id"],
            row["time"][:19].replace("T", " "),
            _size(row["size"]),
            state,
            ", ".join(row["targets"]),
        )
    make_console().print(table)


def _rows(sites: list[SiteStorage]) -> Iterator[dict[str, Any]]:
    from maintkit.storage.manifest import list_snapshots

    for site in sites:
        merged: dict[str, dict[str, Any]] = {}
        for target in site.targets:
            for info in list_snapshots(target, site.name, site.env):
                row = merged.setdefault(
                    info.id,
                    {
                        "site": site.name,
                        "env": site.env,
                        "id": info.id,
                        "time": info.time.isoformat(),
                        "size": info.size,
                        "state": "verified",
                        "complete": True,
                        "verified": True,
                        "problem": None,
                        "targets": [],
                    },
                )
                row["targets"].append(target.name)
                row["complete"] = row["complete"] and info.complete
                row["verified"] = row["verified"] and info.verified
                if info.problem and row["state"] != "problem":
                    row["state"], row["problem"] = "problem", info.problem
                elif info.verify_problem and row["state"] not in {"problem", "verify failed"}:
                    row["state"] = "verify failed"
                    row["problem"] = f"verify failed in {target.name}: {info.verify_problem}"
        for row in merged.values():
            if row["state"] == "verified" and not row["verified"]:
                row["state"] = "complete" if row["complete"] else "unfinished"
        yield from sorted(merged.values(), key=lambda r: r["id"], reverse=True)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


@snapshots.command()
@click.argument("snapshot_id")
@_options
def show(snapshot_id: str, where: Where, target: tuple[str, ...]) -> None:
    """Print the manifest of SNAPSHOT_ID (or ``latest``) as JSON, with its last verification."""
    from maintkit.model.problems import StepFailed
    from maintkit.storage.base import StorageError
    from maintkit.storage.manifest import read_verification, verification_problem
    from maintkit.storage.operations import resolve_snapshot

    for site in _sites(where, target):
        for store in site.targets:
            try:
                manifest = resolve_snapshot(store, site.name, site.env, snapshot_id)
            except StepFailed:
                continue
            document = json.loads(manifest.to_json())
            try:
                verification = read_verification(store, site.name, site.env, manifest.snapshot_id)
                problem = verification_problem(verification) if verification else None
            except StorageError as error:
                verification, problem = None, f"verification record does not read: {error}"
            document["target"] = store.name
            document["verification"] = json.loads(verification.to_json()) if verification else None
            state = "verify failed" if problem else ("verified" if verification else "complete")
            document["state"], document["problem"] = state, problem
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))
            return
    raise click.ClickException(f"no complete snapshot {snapshot_id!r} in any target")


@snapshots.command()
@click.argument("snapshot_id", default="latest")
@_options
def verify(snapshot_id: str, where: Where, target: tuple[str, ...]) -> None:
    """Re-read SNAPSHOT_ID (or ``latest``) in every target: size, SHA-256, decompression, listing.

    Exit 0 when every artifact in every target checks out, 1 otherwise (with the reason).
    """
    from maintkit.cli.recording import Recording
    from maintkit.model.problems import InvalidInput
    from maintkit.storage.encryption import EncryptionError
    from maintkit.storage.sites import site_encryption

    sites = _sites(where, target)
    identities = {}
    for site in sites:  # every site's key before anything is read: bad input stops it all (exit 2)
        try:
            encryption = site_encryption(site.variables)
            identities[site.name] = (
                encryption.load_identities() if encryption and encryption.identity_file else None
            )
        except InvalidInput as error:
            fail_invalid(error)
        except EncryptionError as error:
            raise click.ClickException(str(error)) from error
    failures, code = 0, 1  # 1 unless the loop ends: an error half-way is recorded as a failed run
    recording = Recording("snapshots verify", sites[0].env if sites else "", [s.name for s in sites])
    try:
        for site in sites:
            failures += _verify_site(site, snapshot_id, identities[site.name], recording)
        code = 1 if failures else 0
    finally:
        recording.finish(code)
    sys.exit(code)


def _verify_site(site: SiteStorage, snapshot_id: str, identities: Any, recording: Any) -> int:
    """Verify one site's snapshot in each of its targets, print and record it; return the failures."""
    from maintkit.model.problems import StepFailed
    from maintkit.storage.operations import resolve_snapshot
    from maintkit.storage.verify import verify_snapshot

    failures = 0
    verdicts: dict[str, bool] = {}
    ids: set[str] = set()
    problems: list[str] = []
    for store in site.targets:
        try:
            manifest = resolve_snapshot(store, site.name, site.env, snapshot_id)
        except StepFailed as error:
            click.echo(f"FAILED {site.name} {store.name}: {error}")
            failures += 1
            verdicts[store.name] = False
            problems.append(f"{store.name}: {error}")
            continue
        result = verify_snapshot(store, manifest, identities=identities)
        for check in result.results:
            mark = "ok" if check.ok else "FAILED"
            detail = "" if check.ok else f": {check.message}"
            click.echo(f"{mark} {site.name} {store.name} {manifest.snapshot_id} {check.name}{detail}")
        failures += 0 if result.ok else 1
        verdicts[store.name], ids = result.ok, ids | {manifest.snapshot_id}
        problems += [f"{store.name}: {r.name}: {r.message}" for r in result.results if not r.ok]
    data = {"snapshot_id": ", ".join(sorted(ids)), "targets": verdicts}
    recording.step(site.name, "verify", not problems, "; ".join(problems) or "verified", data)
    return failures


@snapshots.command()
@_options
@click.option("--dry-run", is_flag=True, help="Show what would be pruned; delete nothing.")
def prune(where: Where, target: tuple[str, ...], dry_run: bool) -> None:
    """Delete the snapshots the ``retention`` policy no longer keeps (see docs/snapshots.md)."""
    from maintkit.cli.recording import Recording

    sites = _sites(where, target)
    recording = None  # a dry run changes nothing: the history records what ran
    if not dry_run:
        recording = Recording("snapshots prune", sites[0].env if sites else "", [s.name for s in sites])
    code = 1
    try:
        for site in sites:
            removed = _prune_site(site, dry_run)
            if recording is not None:
                count = sum(len(ids) for ids in removed.values())
                recording.step(site.name, "prune", True, f"{count} snapshot(s) pruned", {"pruned": removed})
        code = 0
    finally:
        if recording is not None:
            recording.finish(code)


def _prune_site(site: SiteStorage, dry_run: bool) -> dict[str, list[str]]:
    """Prune one site in each of its targets and print the decisions; return target -> pruned ids."""
    from maintkit.storage.operations import prune_target
    from maintkit.storage.sites import site_retention

    removed: dict[str, list[str]] = {}
    policy = site_retention(site.variables)
    for store in site.targets:
        keep, pruned = prune_target(store, site.name, site.env, policy, dry_run=dry_run)
        for decision in keep:
            click.echo(
                f"keep   {site.name} {store.name} {decision.snapshot.id}  ({', '.join(decision.reasons)})"
            )
        verb = "would prune" if dry_run else "pruned"
        for decision in pruned:
            click.echo(
                f"{verb} {site.name} {store.name} {decision.snapshot.id}  ({', '.join(decision.reasons)})"
            )
        removed[store.name] = [decision.snapshot.id for decision in pruned]
    return removed
