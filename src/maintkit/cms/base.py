"""What maintkit knows about one CMS (a :class:`Profile`), and the registry of them.

Why one place: the knowledge of a CMS (where its database settings live and how PHP reads and
writes them, which caches a snapshot leaves out, its release layout, how it enters maintenance,
where its base URLs live, which audit checks it) used to be spread over nine modules, and what
each CMS supported drifted apart. Now a profile says it, and every ``cms``/``app`` parameter is
typed by :func:`cms_name`, which checks the value against the registry and the feature the
parameter needs: support is consistent by construction, and a new CMS is one module in this
package (``docs/cms.md``).

This module imports nothing of maintkit: the parameter models of ``sources`` (``FilesSource.cms``,
``DatabaseSource.from``) are typed by it, so it stands below them. Profiles hold data and small
pure builders (``shlex`` only); the builders that run things on a host stay where they were and
take a profile's data.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

#: what a profile may support; a parameter that needs one accepts only the CMSs that have it
Feature = Literal["config", "release", "maintenance", "url_rewrite"]
FEATURES: dict[str, str] = {
    "config": "application config with database settings",
    "release": "atomic releases",
    "maintenance": "maintenance mode",
    "url_rewrite": "URL rewriting of a restored copy",
}


@dataclass(frozen=True)
class AppConfig:
    """The application config that holds the database settings, and the PHP that reads and writes it.

    ``read_php`` and ``write_php`` are the bodies of a ``case`` of the PHP programs in
    :mod:`maintkit.sources.appconfig` (which give them ``$root``, the helpers ``mk_include``,
    ``mk_host``, ``mk_fail``, ``mk_write``, ``mk_defines``, and ``$s``, the new settings).
    ``read_php`` sets ``$file``, ``$host``, ``$port``, ``$socket``, ``$name``, ``$user``, ``$pass``.
    """

    file: str
    read_php: str
    write_php: str
    #: how the config spells a socket: "path" (``/run/mysqld.sock``) or "localhost:path"
    socket: Literal["path", "localhost:path"] = "localhost:path"
    #: the port in a setting of its own (else ``host:port`` in one value)
    separate_port: bool = False


@dataclass(frozen=True)
class ReleaseLayout:
    """Atomic releases: what each release links to ``shared/``, copies for real, and starts empty."""

    shared: tuple[str, ...]
    copy: tuple[str, ...]
    clear: tuple[str, ...]
    #: ``preview`` can ask the copy whether the schema or config moved (Magento's setup:*:status)
    setup_status: bool = False


@dataclass(frozen=True)
class MaintenanceCli:
    """Maintenance through the CMS's own command line, run in (or against) the shop's root.

    ``status(program, root, host_path)`` builds a command that exits 0 when in maintenance, 1 when
    not; ``switch(program, root, on, host_path)`` one that enters or leaves it. ``program`` is the
    action's parameter named ``program_param`` (php, wp); ``host_path`` quotes a path on the host
    (``~/`` is the home), as the caller's shell helpers do.
    """

    program_param: Literal["php", "wp"]
    status: Callable[[str, str, Callable[[str], str]], str]
    switch: Callable[[str, str, bool, Callable[[str], str]], str]


@dataclass(frozen=True)
class MaintenanceSetting:
    """Maintenance as a setting in the shop's database, written with the shop's own credentials.

    ``status_sql``/``on_sql``/``off_sql`` take ``{prefix}`` (the checked table prefix);
    the status query prints ``active_value`` when the shop is in maintenance.
    """

    status_sql: str
    on_sql: str
    off_sql: str
    active_value: str
    default_prefix: str


@dataclass(frozen=True)
class UrlRewrite:
    """Where a copy's base URLs live, and the SQL that points them at the copy.

    ``statements(table, url, secure_url, literal)`` returns SQL statements, each UPDATE followed by
    ``SELECT '#rewritten', WHAT, ROW_COUNT();``; ``table`` is already qualified and quoted,
    ``literal`` quotes a value for SQL.
    """

    table: str
    default_prefix: str
    statements: Callable[[str, str, str | None, Callable[[str], str]], list[str]]


@dataclass(frozen=True)
class Profile:
    """One CMS. ``None`` for a feature means the CMS does not have it (validation says so)."""

    name: str
    title: str
    #: caches the CMS rebuilds, relative to its root (anchored patterns): a snapshot leaves them out
    excludes: tuple[str, ...] = ()
    config: AppConfig | None = None
    #: PHP printing ``version=``/``package=``/``db_version=`` lines, given ``$root`` and ``mk_out``
    version_php: str = ""
    release: ReleaseLayout | None = None
    maintenance: MaintenanceCli | MaintenanceSetting | None = None
    url_rewrite: UrlRewrite | None = None
    #: the ``audit`` action's tool that checks this CMS's code (composer advisories, checksums)
    audit: Literal["composer", "wordpress"] | None = None
    #: the shipped playbooks that update (on staging) and promote (to production) this CMS
    update_playbook: str | None = None
    promote_playbook: str | None = None
    #: where the CMS stands in lists (choices, messages, docs): lower first, then by name
    rank: int = 100

    def has(self, feature: Feature) -> bool:
        return getattr(self, feature) is not None


_profiles: dict[str, Profile] = {}
_lock = threading.Lock()
_loaded = False


def _load() -> None:
    """Import every profile module of this package once (a new CMS is a new module here)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        import maintkit.cms as package

        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "base" and not module.name.startswith("_"):
                importlib.import_module(f"maintkit.cms.{module.name}")
        _loaded = True


def register(profile: Profile) -> Profile:
    """Add ``profile`` to the registry (a profile module calls this at import). Returns it."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", profile.name):
        # the name reaches PHP and shell command lines unquoted (php -- NAME ...; case 'NAME':)
        raise ValueError(f"a CMS name is lower-case letters, digits and _: {profile.name!r}")
    if profile.name in _profiles and _profiles[profile.name] is not profile:
        raise ValueError(f"a CMS profile named {profile.name!r} is already registered")
    _profiles[profile.name] = profile
    return profile


def unregister(name: str) -> None:
    """Remove a profile (tests that register a toy one clean up with this)."""
    _profiles.pop(name, None)


def names(feature: Feature | None = None) -> list[str]:
    """The registered CMS names (those that have ``feature``), by rank then name."""
    _load()
    found = [p for p in _profiles.values() if feature is None or p.has(feature)]
    return [p.name for p in sorted(found, key=lambda p: (p.rank, p.name))]


def release_layout(name: str) -> ReleaseLayout:
    """The release layout of CMS ``name``; ``ValueError`` when it has none."""
    layout = get(check(name, "release")).release
    assert layout is not None
    return layout


def config_file(name: str) -> str | None:
    """The file under a site's root holding the database settings of CMS ``name`` (None: none)."""
    config = get(name).config
    return config.file if config is not None else None


def get(name: str) -> Profile:
    """The profile named ``name``; ``KeyError`` naming the known ones otherwise."""
    _load()
    try:
        return _profiles[name]
    except KeyError:
        raise KeyError(f"unknown cms {name!r} (known: {', '.join(_profiles)})") from None


def problem(name: object, feature: Feature | None = None) -> str | None:
    """Why ``name`` is not a CMS that has ``feature`` (in pydantic's words for a choice), or None."""
    if isinstance(name, str) and name in names() and (feature is None or get(name).has(feature)):
        return None
    quoted = [repr(n) for n in names(feature)]
    expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    why = f"Input should be {expected}"
    if isinstance(name, str) and name in names():
        why += f" ({name} has no {FEATURES[feature or 'config']})"
    return why


def check(name: str, feature: Feature | None = None) -> str:
    """``name`` when it is a registered CMS that has ``feature``; ``ValueError`` saying who has it."""
    why = problem(name, feature)
    if why is not None:
        raise ValueError(f"cms {name!r}: {why}")
    return name


@dataclass(frozen=True)
class CmsChoice:
    """The pydantic marker behind the ``*Cms`` types below: checks a value against the registry
    when it is validated (not at import), so a profile registered later is accepted too."""

    feature: Feature | None = None

    def choices(self) -> list[str]:
        return names(self.feature)

    def validate(self, value: str) -> str:
        why = problem(value, self.feature)
        if why is not None:  # a choice error, worded as pydantic words one for a Literal
            raise PydanticCustomError("literal_error", why)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "enum": self.choices()}

    def describe(self) -> str:
        """How ``maintkit actions`` prints the type: the names accepted now."""
        return " | ".join(self.choices())


#: the type of a parameter naming any CMS (``none``: no CMS, a plain composer project or folder)
CmsName = Annotated[str, CmsChoice()]
#: a CMS whose application config holds its database settings
ConfigCms = Annotated[str, CmsChoice("config")]
#: a CMS with atomic releases
ReleaseCms = Annotated[str, CmsChoice("release")]
#: a CMS with a maintenance mode
MaintenanceCms = Annotated[str, CmsChoice("maintenance")]
#: a CMS whose restored copy's base URLs can be rewritten
UrlRewriteCms = Annotated[str, CmsChoice("url_rewrite")]
