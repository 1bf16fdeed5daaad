"""Storage targets and retention from the inventory: the ``storage:`` and ``retention:`` vars.

```yaml
storage:
  - name: local
    type: local
    path: /var/backups/maintkit          # relative paths start at the inventory's folder
  - name: offsite
    type: s3
    bucket: shop-backups
    prefix: maintkit
    region: eu-west-3
    profile: backups                     # credentials: the AWS chain or this profile, nothing else
    object_lock: {mode: COMPLIANCE, days: 30}
retention: {keep_daily: 7, keep_weekly: 4, keep_monthly: 12}
```

Why credential keys are rejected by name, with their own message: an inventory is committed to
git and copied around; a secret key written there leaks. Telling the user *where* credentials go
(the AWS chain, or ``profile``) is more useful than "unknown key".
Why everything is checked before anything runs: a typo in a bucket option found after a
twenty-minute dump is a failed night; all problems are reported at once (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from maintkit.model.problems import InvalidInput, Problem
from maintkit.storage.base import Target
from maintkit.storage.registry import TARGET_TYPES
from maintkit.storage.retention import RetentionPolicy
from maintkit.storage.settings import CREDENTIAL_KEYS, CREDENTIAL_MESSAGE, SettingsModel, TargetSettings
from maintkit.text.yamlload import did_you_mean, key_path, locate, type_name

if TYPE_CHECKING:
    from maintkit.storage.encryption import EncryptionSettings

DEFAULT_PATH = "./.maintkit/snapshots"
#: how a snapshot keeps the site's files: a full tar per night, or restic's deduplicated repository
FILES_ENGINES = ("tar", "restic")


class RetentionModel(SettingsModel):
    keep_last: int = Field(0, ge=0)
    keep_hourly: int = Field(0, ge=0)
    keep_daily: int = Field(0, ge=0)
    keep_weekly: int = Field(0, ge=0)
    keep_monthly: int = Field(0, ge=0)
    keep_yearly: int = Field(0, ge=0)


class EncryptionModel(SettingsModel):
    recipients: list[str] = Field(
        min_length=1, description="age public keys (age1…) or SSH public keys; needed to take snapshots."
    )
    identity_file: str | None = Field(
        None, min_length=1, description="age identity file; needed only to verify and restore."
    )


Fail = Callable[[tuple[Any, ...], str], None]


def default_targets() -> list[Target]:
    """The embedded default: one folder, ``./.maintkit/snapshots`` of the current directory."""
    from maintkit.storage.local import LocalTarget

    return [LocalTarget("local", Path.cwd() / DEFAULT_PATH)]


def targets_from_vars(storage_value: Any, base_dir: str | Path, *, file: str = "inventory") -> list[Target]:
    """Return the targets the ``storage`` var describes (the default when it is absent).

    ``storage_value`` is a list of ``{name, type, ...}`` mappings or a single one. Relative
    ``path`` values of local targets start at ``base_dir`` (the inventory's folder). Problems are
    reported all at once as InvalidInput, located in ``file`` when ``storage_value`` was loaded with
    positions (maintkit's YAML loader), with paths like ``storage[1].bucket``.
    """
    if storage_value is None:
        return default_targets()
    items = [storage_value] if isinstance(storage_value, Mapping) else storage_value
    problems: list[Problem] = []

    def fail(path: tuple[Any, ...], message: str) -> None:
        line, column = locate(storage_value, path)
        problems.append(Problem(file, line, column, key_path(("storage", *path)), message))

    if not isinstance(items, list):
        fail((), f"must be a list of storage targets (mappings with name and type), not {type_name(items)}")
        raise InvalidInput(problems)
    if not items:
        fail((), "is empty: name at least one storage target, or leave `storage` out for the default")
        raise InvalidInput(problems)
    single = isinstance(storage_value, Mapping)
    parsed: list[tuple[tuple[Any, ...], TargetSettings]] = []
    for index, item in enumerate(items):
        path: tuple[Any, ...] = () if single else (index,)
        model = _parse_target(item, path, fail)
        if model is not None:
            parsed.append((path, model))
    _check_unique_names(parsed, fail)
    if problems:
        raise InvalidInput(problems)
    return [model.build(Path(base_dir)) for _path, model in parsed]


def _parse_target(item: Any, path: tuple[Any, ...], fail: Fail) -> TargetSettings | None:
    if not isinstance(item, Mapping):
        fail(path, f"a storage target must be a mapping with name and type, not {type_name(item)}")
        return None
    kind = item.get("type")
    if kind is None:
        fail(path, f"missing 'type' ({' or '.join(TARGET_TYPES)})")
        return None
    if not isinstance(kind, str) or kind not in TARGET_TYPES:  # a list or mapping is unhashable: check first
        if not isinstance(kind, str):
            fail((*path, "type"), f"unknown storage type: {type_name(kind)}; types: {_types()}")
            return None
        lower = kind.lower()
        hint = f" (did you mean '{lower}'?)" if lower in TARGET_TYPES else did_you_mean(kind, TARGET_TYPES)
        fail((*path, "type"), f"unknown storage type '{kind}'{hint}; types: {_types()}")
        return None
    model_class = TARGET_TYPES[kind]()
    accepted = list(model_class.model_fields)
    clean = True
    for key in item:
        normalized = str(key).lower().replace("-", "_")
        if normalized in CREDENTIAL_KEYS:
            fail((*path, key), f"'{key}': {CREDENTIAL_MESSAGE}")
            clean = False
        elif key not in accepted:
            hint = did_you_mean(key, accepted) or f"; a {kind} target takes {', '.join(accepted)}"
            fail((*path, key), f"unknown key '{key}'{hint}")
            clean = False
    try:
        model = model_class.model_validate(dict(item))
    except ValidationError as error:
        for problem in error.errors():
            if problem["type"] == "extra_forbidden":
                continue  # reported above, by name
            fail((*path, *problem["loc"]), _message(problem))
        return None
    return model if clean else None


def _types() -> str:
    return ", ".join(TARGET_TYPES)


def _message(problem: Mapping[str, Any]) -> str:
    """A pydantic error's message, without its "Value error, " prefix and never the input value."""
    message = str(problem["msg"])
    if problem["type"] == "missing":
        return "missing"
    if problem["type"] == "string_pattern_mismatch" and problem["loc"][-1:] == ("name",):
        return "a name is letters, digits, '.', '_' and '-', starting with a letter or digit"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def _check_unique_names(parsed: list[tuple[tuple[Any, ...], TargetSettings]], fail: Fail) -> None:
    seen: set[str] = set()
    for path, model in parsed:
        if model.name in seen:
            fail(
                (*path, "name"),
                f"duplicate storage target name '{model.name}' (targets need distinct names; "
                "an unnamed target is called after its type)",
            )
        seen.add(model.name)


def retention_from_vars(value: Any, *, file: str = "inventory") -> RetentionPolicy:
    """Return the policy the ``retention`` var describes; absent, the empty policy (keep everything)."""
    if value is None:
        return RetentionPolicy()
    problems: list[Problem] = []

    def fail(path: tuple[Any, ...], message: str) -> None:
        line, column = locate(value, path)
        problems.append(Problem(file, line, column, key_path(("retention", *path)), message))

    if not isinstance(value, Mapping):
        fail((), f"must be a mapping such as {{keep_daily: 7}}, not {type_name(value)}")
        raise InvalidInput(problems)
    accepted = list(RetentionModel.model_fields)
    for key in value:
        if key not in accepted:
            hint = did_you_mean(key, accepted) or "; rules: " + ", ".join(accepted)
            fail((key,), f"unknown rule '{key}'{hint}")
    try:
        model = RetentionModel.model_validate(dict(value))
    except ValidationError as error:
        for problem in error.errors():
            if problem["type"] != "extra_forbidden":
                fail(tuple(problem["loc"]), _message(problem))
    if problems:
        raise InvalidInput(problems)
    return RetentionPolicy(**model.model_dump())


def encryption_from_vars(
    value: Any, base_dir: str | Path, *, file: str = "inventory"
) -> EncryptionSettings | None:
    """Return the settings the ``encryption`` var describes, or None (no encryption) when absent.

    ``{recipients: [age1…], identity_file: PATH}``: every recipient is parsed now, so a typo in a
    key fails before any dump starts (exit 2), not after. A relative ``identity_file`` starts at
    ``base_dir``; the file itself is read only when something must be decrypted.
    """
    if value is None:
        return None
    from maintkit.storage.encryption import EncryptionError, EncryptionSettings, parse_recipient

    problems: list[Problem] = []

    def fail(path: tuple[Any, ...], message: str) -> None:
        line, column = locate(value, path)
        problems.append(Problem(file, line, column, key_path(("encryption", *path)), message))

    if not isinstance(value, Mapping):
        fail((), f"must be a mapping such as {{recipients: [age1…]}}, not {type_name(value)}")
        raise InvalidInput(problems)
    accepted = list(EncryptionModel.model_fields)
    for key in value:
        if key not in accepted:
            hint = did_you_mean(key, accepted) or "; keys: " + ", ".join(accepted)
            fail((key,), f"unknown key '{key}'{hint}")
    try:
        model = EncryptionModel.model_validate(dict(value))
    except ValidationError as error:
        for problem in error.errors():
            if problem["type"] != "extra_forbidden":
                fail(tuple(problem["loc"]), _message(problem))
        raise InvalidInput(problems) from None
    for index, recipient in enumerate(model.recipients):
        try:
            parse_recipient(recipient)
        except EncryptionError as error:
            fail(("recipients", index), str(error))
    if problems:
        raise InvalidInput(problems)
    identity = None
    if model.identity_file:
        identity = Path(model.identity_file).expanduser()
        identity = identity if identity.is_absolute() else Path(base_dir) / identity
    return EncryptionSettings(tuple(r.strip() for r in model.recipients), identity)


def files_engine_from_vars(value: Any, targets: list[Target], *, file: str = "inventory") -> str:
    """Return the ``files_engine`` var (``tar``, the default, or ``restic``), checked against ``targets``.

    Why restic is refused beside an Object Lock target: ``restic prune`` must delete and rewrite
    packs, which a locked bucket forbids, so retention could never free anything (docs/snapshots.md).
    Saying so before the run beats a prune that fails every night.
    """
    if value is None:
        return "tar"
    line, column = locate(value, ())
    if not isinstance(value, str) or value not in FILES_ENGINES:
        shown = f"'{value}'" if isinstance(value, str) else type_name(value)
        hint = did_you_mean(value, FILES_ENGINES) if isinstance(value, str) else ""
        message = f"unknown files engine {shown}{hint}; engines: {', '.join(FILES_ENGINES)}"
        raise InvalidInput([Problem(file, line, column, "files_engine", message)])
    locked = [t.name for t in targets if getattr(t, "object_lock", None) is not None]
    if value == "restic" and locked:
        message = (
            f"files_engine: restic cannot write to a target with object_lock ({', '.join(locked)}): "
            "restic prune must delete packs, which Object Lock forbids; use files_engine: tar there, "
            "or a target without object_lock"
        )
        raise InvalidInput([Problem(file, line, column, "files_engine", message)])
    return value


#: ``files_engine_install``: how a host without restic 0.14+ gets one (maintkit.jobs.engine_host)
ENGINE_INSTALL_SETTING = "files_engine_install"
ENGINE_INSTALL_MODES = ("ship", "package", "never")
DEFAULT_ENGINE_INSTALL = "ship"


def engine_install_from_vars(value: Any, *, file: str = "inventory") -> str:
    """Return the ``files_engine_install`` mode (``ship`` when absent); InvalidInput at its line if unknown.

    Why checked with the storage settings: a typo (``shipp``) found when the first host lacks restic
    would fail a night that validation can save.
    """
    if value is None:
        return DEFAULT_ENGINE_INSTALL
    if isinstance(value, str) and value in ENGINE_INSTALL_MODES:
        return value
    line, column = locate(value, ())
    shown = f"'{value}'" if isinstance(value, str) else type_name(value)
    hint = did_you_mean(value, ENGINE_INSTALL_MODES) if isinstance(value, str) else ""
    message = (
        f"unknown mode {shown}{hint}; one of {', '.join(ENGINE_INSTALL_MODES)} (ship: copy the control "
        "node's restic to the host; package: the host's package manager; never: only a restic already there)"
    )
    raise InvalidInput([Problem(file, line, column, ENGINE_INSTALL_SETTING, message)])
