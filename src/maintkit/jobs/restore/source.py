"""Where a restore reads its snapshot when the target is another environment.

``maintkit restore … --env production --into staging`` and ``maintkit drill`` run a playbook
against the *target* environment's inventory, but the snapshot lives in the *source* environment's
storage, under the source's site names. The CLI therefore loads the source inventory first and hands
the run one :class:`RestoreSource` (``StepContext.restore_source``), built from this description
(which a playbook may also give a ``restore`` step explicitly, as its ``source:`` parameter)::

    source:
      env: production                      # the snapshots' environment (SITE/ENV/ID in storage)
      inventory: /abs/inventories/production.yml
      sites:
        shop:                              # site name (the `site` var, else the host name)
          storage: [{name: offsite, type: s3, bucket: …}, {name: local, type: local, path: /abs/…}]
          identity_file: /abs/backup-age.txt   # encryption.identity_file, when snapshots are encrypted
          hosts: [{host: prod1, address: 203.0.113.10, port: 22, user: deploy,
                   files_root: /var/www/shop, db_server: 203.0.113.10, db_name: shop, app_root: null}]

Storage settings are rendered and local paths made absolute (they were relative to the source
inventory's folder); no credential is in there (inventories may not hold any), and of the age
settings only the *path* of the identity file travels (read on the control node, never sent). The
``hosts`` list is what :mod:`maintkit.jobs.restore.guard` compares a drill target with. A target host
picks its site by its own ``site`` variable (or host name): a drill host of the site ``shop`` sets
``site: shop``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maintkit.jobs.restore.guard import Place, place_of
from maintkit.model.hosts import Host, Inventory
from maintkit.model.problems import MaintkitError, StepFailed
from maintkit.secrets import Redactor
from maintkit.storage.base import Target
from maintkit.storage.config import DEFAULT_PATH, targets_from_vars
from maintkit.storage.sites import site_encryption, site_name
from maintkit.text.templating import render


def plain(value: Any) -> Any:
    """``value`` as plain JSON data (the YAML loader's position-carrying types removed)."""
    return json.loads(json.dumps(value, default=str))


def rendered(variables: Mapping[str, Any], name: str) -> Any:
    """A host variable rendered, or None when absent or not renderable without a run."""
    value = variables.get(name)
    if value is None:
        return None
    try:
        return render(value, variables, Redactor())
    except MaintkitError:
        return None


def resolved_storage(variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's ``storage`` setting with local paths made absolute (checked: InvalidInput if bad)."""
    base = Path(str(variables.get("inventory_dir") or ".")).resolve()
    value = rendered(variables, "storage")
    if value is None:
        return [{"name": "local", "type": "local", "path": str(Path.cwd() / DEFAULT_PATH)}]
    targets_from_vars(value, base)  # the same checks as a snapshot run: fail now, not on the host
    items = [value] if isinstance(value, Mapping) else list(value)
    out = []
    for item in plain(items):
        if item.get("type") == "local":
            path = Path(str(item.get("path", ""))).expanduser()
            item["path"] = str(path if path.is_absolute() else base / path)
        out.append(item)
    return out


def host_place(name: str, host: Any, variables: Mapping[str, Any]) -> Place:
    """The :class:`Place` of an inventory host (its ``files`` and ``database`` variables)."""
    files, database = rendered(variables, "files"), rendered(variables, "database")
    return place_of(
        name,
        host.address or host.name,
        host.port,
        host.user,
        files if isinstance(files, Mapping) else None,
        database if isinstance(database, Mapping) else None,
    )


def describe_source(
    inventory: Inventory,
    variables_of: Callable[[Host], Mapping[str, Any]],
    hosts: list[Any] | None = None,
) -> dict[str, Any]:
    """The ``restore_source`` value for ``inventory`` (every host, or ``hosts``).

    ``variables_of`` gives a host's variables (``config.variables.host_vars``): passed
    in so that this package never imports ``config``, which sits above it.
    """
    sites: dict[str, dict[str, Any]] = {}
    for host in hosts if hosts is not None else inventory.hosts.values():
        variables = variables_of(host)
        site = site_name(variables)
        if site not in sites:
            encryption = site_encryption(variables)
            identity = encryption.identity_file if encryption is not None else None
            sites[site] = {
                "storage": resolved_storage(variables),
                "identity_file": str(Path(identity).expanduser().resolve()) if identity else None,
                "hosts": [],
            }
        entry = sites[site]
        entry["hosts"].append(host_place(host.name, host, variables).as_dict())
    return {"env": inventory.name, "inventory": str(Path(inventory.path).resolve()), "sites": sites}


@dataclass
class RestoreSource:
    """The source environment of a restore: built once by ``maintkit restore --into`` / ``drill``
    (``from_value(describe_source(...))``) and handed to the actions as it is, or parsed from a
    step's explicit ``source:`` parameter."""

    env: str
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> RestoreSource:
        if not isinstance(value.get("env"), str) or not isinstance(value.get("sites"), Mapping):
            raise StepFailed("restore_source must have 'env' and 'sites' (set by maintkit restore/drill)")
        return cls(value["env"], {str(k): dict(v) for k, v in value["sites"].items()})

    def targets(self, site: str) -> list[Target]:
        """The storage targets holding ``site``'s snapshots in the source environment."""
        entry = self.sites.get(site)
        if entry is None:
            known = ", ".join(sorted(self.sites)) or "none"
            raise StepFailed(
                f"environment {self.env} has no site {site!r} (its sites: {known}); "
                "give this host the source's site name with `site: NAME`"
            )
        return targets_from_vars(entry["storage"], "/")

    def identity_file(self, site: str) -> str | None:
        """The identity file that decrypts ``site``'s snapshots (encrypted ones), or None."""
        value = self.sites.get(site, {}).get("identity_file")
        return str(value) if value else None

    @classmethod
    def of_step(cls, value: Mapping[str, Any] | None, given: RestoreSource | None) -> RestoreSource | None:
        """The source of a step: its explicit ``source:`` parameter, else the run's (the CLI's), else None."""
        return cls.from_value(value) if value is not None else given

    def places(self) -> list[Place]:
        """Every host of the source environment (for the production guard)."""
        return [Place.from_dict(h) for entry in self.sites.values() for h in entry.get("hosts", [])]
