"""Reading Ansible YAML inventories into :class:`~maintkit.model.hosts.Inventory`.

Why Ansible's format: teams already have these files. What we add is strictness: a misspelt
``childen:`` or a port of ``"22a"`` is reported with its line before anything connects, where Ansible
would quietly make a group named ``childen`` or fail at connection time.

Variable precedence, lowest first: group ``all`` < parent groups < child groups (ordered by depth, then
name, as Ansible does) < the host. In the folder layout (``inventories/NAME/hosts.yml``), a group's
``group_vars/GROUP.yml`` overrides that group's inline ``vars``, and ``host_vars/HOST.yml`` overrides
the host's inline variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maintkit.config import ahead
from maintkit.config.ini_inventory import load_ini_inventory, looks_like_ini
from maintkit.config.sshargs import proxy_jump
from maintkit.model.hosts import Host, Inventory
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.text.templating import has_template
from maintkit.text.yamlload import did_you_mean, display_path, load_yaml, locate, problem_at, type_name

GROUP_KEYS = ("hosts", "children", "vars")
FOLDER_FILES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts")
YAML_SUFFIXES = (".yml", ".yaml")
ENV_SUFFIXES = (*YAML_SUFFIXES, ".ini")
#: Host field -> the variables that set it, strongest first when one mapping sets several
CONNECTION_VARS: dict[str, tuple[str, ...]] = {
    "address": ("ansible_host", "ansible_ssh_host", "host"),
    "port": ("ansible_port", "ansible_ssh_port", "port"),
    "user": ("ansible_user", "ansible_ssh_user", "user"),
    "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file", "key"),
    "connection": ("ansible_connection", "connection"),
    "known_hosts": ("known_hosts",),
    "accept_new_host_keys": ("accept_new_host_keys",),
    "connect_timeout": ("ssh_connect_timeout", "ansible_ssh_timeout", "ansible_timeout"),
    "banner_timeout": ("ssh_banner_timeout",),
    "auth_timeout": ("ssh_auth_timeout",),
    "proxy_jump": ("ansible_ssh_extra_args", "ansible_ssh_common_args"),
    "become": ("ansible_become", "become"),
    "become_user": ("ansible_become_user", "become_user"),
    "become_method": ("ansible_become_method", "become_method"),
}
#: the settings above that are seconds: a number, more than 0, at most an hour
TIMEOUT_SETTINGS = ("connect_timeout", "banner_timeout", "auth_timeout")
CONNECTIONS = {"ssh": "ssh", "smart": "ssh", "paramiko": "ssh", "local": "local"}


@dataclass
class VarsSource:
    """One mapping of variables as written: the data, its file, and its key path in that file."""

    values: dict[str, Any]
    file: str
    data: Any
    path: tuple[Any, ...]


@dataclass
class _Group:
    defined: bool = False
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: list[VarsSource] = field(default_factory=list)
    reference: tuple[str, Any, tuple[Any, ...]] | None = None  # first place a parent names it


@dataclass
class _Parsed:
    groups: dict[str, _Group] = field(default_factory=dict)
    host_vars: dict[str, list[VarsSource]] = field(default_factory=dict)  # in order of appearance
    edges: list[tuple[str, str, str, Any, tuple[Any, ...]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def group(self, name: str) -> _Group:
        return self.groups.setdefault(name, _Group())


@dataclass
class InventoryFile:
    """Where an inventory was found: its YAML file, the folder of the folder layout, and its name."""

    file: Path
    folder: Path | None
    name: str


# -- finding the file ------------------------------------------------------------------------------


def find_inventory(env: str | None, path: str | None, cwd: Path) -> InventoryFile:
    """Given ``--env`` and ``-i``, return the inventory file to read (``-i`` wins).

    ``--env NAME`` tries ``inventories/NAME.yml``, ``.yaml``, then ``inventories/NAME/hosts.yml``
    (``.yaml``). Raise InvalidInput naming every path tried if none exists.
    """
    if path:
        base = cwd / path
        candidates = [base / f for f in FOLDER_FILES] if base.is_dir() else [base]
        fallback = base.name if base.is_dir() else base.stem
    elif env:
        if "=" in env:  # ``--env release=2.4.7`` is a variable typed in the wrong place, never a name
            message = "is given K=V, not an environment name; extra variables are -e/--extra-vars K=V"
            raise InvalidInput([Problem("command line", None, None, "--env", message)])
        if "/" in env or env.startswith("."):
            raise InvalidInput(
                [Problem("command line", None, None, "--env", f"'{env}' is not an environment name")]
            )
        root = cwd / "inventories"
        candidates = [root / f"{env}{s}" for s in ENV_SUFFIXES] + [root / env / f for f in FOLDER_FILES]
        fallback = env
    else:
        raise InvalidInput(
            [Problem("command line", None, None, "--env", "no inventory: give --env NAME or -i PATH")]
        )
    for candidate in candidates:
        if candidate.is_file():
            folder = candidate.parent if candidate.name in FOLDER_FILES else None
            name = env or (folder.name if folder else fallback)
            return InventoryFile(candidate, folder, name)
    tried = ", ".join(display_path(c, cwd) for c in candidates)
    what = f"environment '{env}'" if env and not path else f"'{path}'"
    raise InvalidInput(
        [
            Problem(
                display_path(candidates[0], cwd), None, None, "", f"no inventory for {what} (tried {tried})"
            )
        ]
    )


# -- loading ---------------------------------------------------------------------------------------


def load_inventory(env: str | None, path: str | None, cwd: Path) -> Inventory:
    """Given ``--env`` / ``-i`` and the working directory, return the validated inventory.

    Raise InvalidInput with every problem found (file missing, YAML, structure, types, groups).
    """
    inventory, _ = load_inventory_with_origins(env, path, cwd)
    return inventory


def load_inventory_with_origins(
    env: str | None, path: str | None, cwd: Path
) -> tuple[Inventory, dict[str, dict[str, Position]]]:
    """Like :func:`load_inventory`, also returning where each host's winning variable was written.

    Validation uses the origins to point at an inventory variable whose template is wrong.
    """
    found = find_inventory(env, path, cwd)
    known = ahead.recall(inventory_key(env, path, cwd, found), found.file, found.folder)
    if known is not None:  # built by the fleet's fork server from the same bytes (config.ahead)
        return known
    file = display_path(found.file, cwd)
    data = _read_data(found.file, file)
    parsed = _Parsed()
    if not isinstance(data, dict):
        raise InvalidInput(
            [problem_at(file, data, (), f"an inventory must be a mapping of groups, not {type_name(data)}")]
        )
    _walk_top(data, file, parsed)
    if found.folder is not None:
        _read_folder_vars(found.folder, cwd, parsed)
    _check_references(parsed, file, data)
    cyclic = _check_cycles(parsed)
    if not parsed.host_vars and not parsed.problems:
        parsed.problems.append(problem_at(file, data, (), "the inventory defines no host"))
    if parsed.problems or cyclic:
        raise InvalidInput(parsed.problems)
    return _build(parsed, found, file)


def build_ahead(env: str | None, path: str | None, cwd: Path) -> None:
    """Build this inventory now, so that later loads of the same bytes get a copy (a fleet's fork
    server: :mod:`maintkit.config.ahead`). Raise InvalidInput as :func:`load_inventory` does."""
    found = find_inventory(env, path, cwd)
    key = inventory_key(env, path, cwd, found)
    ahead.remember(key, found.file, found.folder, lambda: load_inventory_with_origins(env, path, cwd))


def inventory_key(env: str | None, path: str | None, cwd: Path, found: InventoryFile) -> ahead.Key:
    """What an inventory built ahead is remembered by (:mod:`maintkit.config.ahead`)."""
    return (env, path, str(cwd), str(found.file))


def _read_data(path: Path, file: str) -> Any:
    """The inventory's data with positions: YAML (``.yml``/``.yaml``/``.json``), or Ansible's INI form.

    INI is a ``.ini`` file, or one without a YAML suffix (Ansible's ``hosts``) whose first line of
    content is a ``[section]`` or a host rather than a ``key:``.
    """
    if path.suffix == ".ini":
        return load_ini_inventory(path, file)
    if path.suffix not in (*YAML_SUFFIXES, ".json"):
        try:
            if looks_like_ini(path.read_text(encoding="utf-8")):
                return load_ini_inventory(path, file)
        except (OSError, UnicodeDecodeError):
            pass  # load_yaml reports it
    return load_yaml(path, file)


def _walk_top(data: dict[Any, Any], file: str, parsed: _Parsed) -> None:
    """Walk the top-level groups; every group other than ``all`` is a child of ``all`` (Ansible's rule)."""
    parsed.group("all").defined = True
    for name, value in data.items():
        if not _valid_name(name, file, data, (name,), "group", parsed):
            continue
        if name != "all":
            _add_edge(parsed, "all", name, file, data, (name,))
        _walk_group(name, value, file, data, (name,), parsed, top=True)


def _walk_group(
    name: str, value: Any, file: str, data: Any, path: tuple[Any, ...], parsed: _Parsed, *, top: bool
) -> None:
    group = parsed.group(name)
    if value is None:
        if top:  # ``webservers:`` alone at the top is an empty group, not a reference
            group.defined = True
        elif group.reference is None:
            group.reference = (file, data, path)
        return
    if not isinstance(value, dict):
        parsed.problems.append(
            problem_at(
                file,
                data,
                path,
                f"group '{name}' must be a mapping of hosts/children/vars, not {type_name(value)}",
            )
        )
        return
    group.defined = True
    for key, item in value.items():
        where = (*path, key)
        if key == "hosts":
            _walk_hosts(name, item, file, data, where, parsed)
        elif key == "children":
            _walk_children(name, item, file, data, where, parsed)
        elif key == "vars":
            source = _vars_source(item, file, data, where, parsed)
            if source:
                group.vars.append(source)
        else:
            hint = did_you_mean(key, GROUP_KEYS) or f"; a group holds only {', '.join(GROUP_KEYS)}"
            parsed.problems.append(
                problem_at(file, data, where, f"unknown key '{key}' in group '{name}'{hint}")
            )


def _walk_hosts(group: str, value: Any, file: str, data: Any, path: tuple[Any, ...], parsed: _Parsed) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        hint = (
            " (write each host as a key: 'hosts: {web1: {ansible_host: ...}}')"
            if isinstance(value, list)
            else ""
        )
        parsed.problems.append(
            problem_at(file, data, path, f"'hosts' must be a mapping, not {type_name(value)}{hint}")
        )
        return
    for host, host_value in value.items():
        where = (*path, host)
        if not isinstance(host, str | int) or isinstance(host, bool):
            parsed.problems.append(problem_at(file, data, where, f"'{host}' is not a host name"))
            continue
        host = str(host)
        if not _valid_name(host, file, data, where, "host", parsed):
            continue
        members = parsed.group(group).hosts
        if host not in members:
            members.append(host)
        sources = parsed.host_vars.setdefault(host, [])
        if host_value is None:
            continue
        if not isinstance(host_value, dict):
            parsed.problems.append(
                problem_at(
                    file,
                    data,
                    where,
                    f"host '{host}' must be a mapping of variables, not {type_name(host_value)}"
                    f" (for an address write '{host}: {{ansible_host: ...}}')",
                )
            )
            continue
        source = _vars_source(host_value, file, data, where, parsed)
        if source:
            sources.append(source)


def _walk_children(
    group: str, value: Any, file: str, data: Any, path: tuple[Any, ...], parsed: _Parsed
) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        parsed.problems.append(
            problem_at(file, data, path, f"'children' must be a mapping of groups, not {type_name(value)}")
        )
        return
    for child, child_value in value.items():
        where = (*path, child)
        if not _valid_name(child, file, data, where, "group", parsed):
            continue
        _add_edge(parsed, group, child, file, data, where)
        _walk_group(child, child_value, file, data, where, parsed, top=False)


def _add_edge(parsed: _Parsed, parent: str, child: str, file: str, data: Any, path: tuple[Any, ...]) -> None:
    if child == "all":
        parsed.problems.append(
            problem_at(file, data, path, "'all' contains every group; it cannot be a child")
        )
        return
    group = parsed.group(parent)
    if child not in group.children:
        group.children.append(child)
        parsed.edges.append((parent, child, file, data, path))


def _valid_name(name: Any, file: str, data: Any, path: tuple[Any, ...], what: str, parsed: _Parsed) -> bool:
    """Host and group names: no spaces or control characters, no '/' (a host name is also the
    default site, one folder of the snapshot layout), not '.' or '..'."""
    if (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c.isspace() or not c.isprintable() or c in "/\\" for c in name)
    ):
        return True
    parsed.problems.append(problem_at(file, data, path, f"{str(name)!r} is not a valid {what} name"))
    return False


# -- variables -------------------------------------------------------------------------------------


def _vars_source(
    value: Any, file: str, data: Any, path: tuple[Any, ...], parsed: _Parsed
) -> VarsSource | None:
    """Check one mapping of variables (names, connection settings); return it, or None if unusable."""
    if value is None:
        return None
    if not isinstance(value, dict):
        parsed.problems.append(
            problem_at(file, data, path, f"variables must be a mapping, not {type_name(value)}")
        )
        return None
    for name, item in value.items():
        where = (*path, name)
        if not isinstance(name, str) or not name.isidentifier():
            parsed.problems.append(
                problem_at(
                    file, data, where, f"'{name}' is not a valid variable name (letters, digits and _)"
                )
            )
            continue
        message = _check_setting(name, item)
        if message:
            parsed.problems.append(problem_at(file, data, where, message))
    return VarsSource(value, file, data, path)


def _check_setting(name: str, value: Any) -> str | None:
    """Return what is wrong with a connection setting or ``secret_vars``, or None."""
    fields = [f for f, names in CONNECTION_VARS.items() if name in names]
    if name == "secret_vars":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"'secret_vars' must be a list of variable names, not {type_name(value)}"
        return None
    if not fields:
        return unsupported_setting(name, value)
    if has_template(value):
        return f"'{name}' cannot use a template: connection settings are read before any template is rendered"
    kind = fields[0]
    if kind == "proxy_jump":
        if not isinstance(value, str):
            return f"'{name}' must be a string of ssh arguments, not {type_name(value)}"
        try:
            proxy_jump(value)
        except ValueError as error:
            return f"'{name}': {error}"
        return None
    if kind == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            return f"'{name}' must be an integer from 1 to 65535, not {_show(value)}"
    elif kind == "connection":
        if not isinstance(value, str) or value not in CONNECTIONS:  # a list is unhashable: no `in` on it
            hint = did_you_mean(value, CONNECTIONS) if isinstance(value, str) else ""
            return f"'{name}' must be 'ssh' or 'local', not {_show(value)}{hint}"
    elif kind == "become_method":
        if value != "sudo":
            return f"'{name}' must be 'sudo' (the only become method maintkit supports), not {_show(value)}"
    elif kind in ("accept_new_host_keys", "become"):
        if not isinstance(value, bool):
            return f"'{name}' must be true or false, not {_show(value)}"
    elif kind in TIMEOUT_SETTINGS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
            return f"'{name}' must be a number of seconds, more than 0 and at most 3600, not {_show(value)}"
    elif not isinstance(value, str) or not value:
        return f"'{name}' must be a non-empty string, not {type_name(value)}"
    return None


#: Ansible's become settings maintkit does not take (it runs ``sudo -u USER`` itself, nothing else)
BECOME_VARS = frozenset(
    {"become_flags", "become_exe"}
    | {f"ansible_{n}" for n in ("become_flags", "become_exe", "sudo", "sudo_user", "sudo_pass")}
)
#: the variables that hold sudo's password (a secret; may be a template): read by config/become.py
BECOME_PASSWORD_VARS = (
    "ansible_become_password",
    "ansible_become_pass",
    "become_password",
    "become_pass",
)
#: ssh options Ansible passes to ssh(1); maintkit reads the same options from ~/.ssh/config
SSH_ARGS_VARS = frozenset({"ansible_ssh_args"})
PASSWORD_VARS = frozenset({"ansible_password", "ansible_ssh_pass", "ansible_ssh_password"})


def is_ignored_interpreter(name: str) -> bool:
    """``ansible_python_interpreter`` and kin: harmless here (maintkit runs no Python on hosts)."""
    return name.startswith("ansible_") and name.endswith("_interpreter")


def unsupported_setting(name: str, value: Any) -> str | None:
    """What is wrong with an Ansible connection variable maintkit does not honour, or None.

    Why refuse instead of ignore: an inventory that says ``ansible_become: true`` or a ProxyJump in
    ``ansible_ssh_common_args`` describes how the hosts must be reached; running without it would
    connect elsewhere or act as another user than the inventory says. A clear error beats a guess.
    """
    supported = ", ".join(n for names in CONNECTION_VARS.values() for n in names if n.startswith("ansible_"))
    if name in BECOME_PASSWORD_VARS:
        return None
    if name in BECOME_VARS:
        return (
            f"'{name}' is not supported: maintkit becomes another user only through "
            "'sudo -u USER' (become: true, become_user, become_password)"
        )
    if name in SSH_ARGS_VARS:
        return (
            f"'{name}' is not passed to ssh: give a ProxyJump in ansible_ssh_common_args "
            "(-o ProxyJump=GATEWAY), other ssh options in ~/.ssh/config (Host NAME), which maintkit reads"
        )
    if name in PASSWORD_VARS:
        return f"'{name}': no password logins; use a key (ansible_ssh_private_key_file) or the agent"
    if name.startswith("ansible_") and not is_ignored_interpreter(name):
        return f"'{name}' is an Ansible setting maintkit does not support; it honours {supported}"
    return None


def _show(value: Any) -> str:
    """Show a connection setting's value in a message (they are addresses and ports, not secrets)."""
    return f"{type_name(value)} {value!r}" if isinstance(value, str | int | float) else type_name(value)


def _read_folder_vars(folder: Path, cwd: Path, parsed: _Parsed) -> None:
    """Read ``group_vars/`` and ``host_vars/`` of the folder layout into the parsed inventory."""
    for kind, known in (("group_vars", parsed.groups), ("host_vars", parsed.host_vars)):
        directory = folder / kind
        if not directory.is_dir():
            continue
        for name, files in _vars_files(directory).items():
            if name not in known:
                what = "group" if kind == "group_vars" else "host"
                shown = display_path(files[0], cwd)
                parsed.problems.append(
                    Problem(
                        shown,
                        None,
                        None,
                        "",
                        f"no {what} '{name}' in the inventory{did_you_mean(name, known)}",
                    )
                )
                continue
            for path in files:
                source = _load_vars_file(path, cwd, parsed)
                if source is None:
                    continue
                if kind == "group_vars":
                    parsed.groups[name].vars.append(source)
                else:
                    parsed.host_vars[name].append(source)


def _vars_files(directory: Path) -> dict[str, list[Path]]:
    """Return name -> files for ``NAME.yml``/``NAME.yaml`` files and ``NAME/`` folders of YAML files."""
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_file() and entry.suffix in YAML_SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
        elif entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
            found.setdefault(entry.name, []).extend(files)
    return found


def _load_vars_file(path: Path, cwd: Path, parsed: _Parsed) -> VarsSource | None:
    file = display_path(path, cwd)
    try:
        data = load_yaml(path, file)
    except InvalidInput as error:
        if not (len(error.problems) == 1 and error.problems[0].message == "the file is empty"):
            parsed.problems.extend(error.problems)
        return None
    return _vars_source(data, file, data, (), parsed)


# -- checks over the whole inventory ---------------------------------------------------------------


def _check_references(parsed: _Parsed, file: str, data: Any) -> None:
    """Report child groups that are named but defined nowhere (a typo, most of the time)."""
    defined = [name for name, group in parsed.groups.items() if group.defined]
    for name, group in parsed.groups.items():
        if group.defined or group.reference is None:
            continue
        ref_file, ref_data, path = group.reference
        hint = did_you_mean(name, [d for d in defined if d != name])
        parsed.problems.append(
            problem_at(ref_file, ref_data, path, f"child group '{name}' is not defined anywhere{hint}")
        )


def _check_cycles(parsed: _Parsed) -> bool:
    """Report every group that contains itself through its children; return True if any does."""
    children = {name: group.children for name, group in parsed.groups.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []
    found = False
    edge_at = {(p, c): (f, d, path) for p, c, f, d, path in parsed.edges}

    def visit(name: str) -> None:
        nonlocal found
        state[name] = 1
        stack.append(name)
        for child in children.get(name, []):
            if state.get(child) == 1:
                cycle = [*stack[stack.index(child) :], child]
                file, data, path = edge_at[(name, child)]
                parsed.problems.append(
                    problem_at(file, data, path, f"groups contain each other: {' -> '.join(cycle)}")
                )
                found = True
            elif child not in state:
                visit(child)
        stack.pop()
        state[name] = 2

    for name in list(children):
        if name not in state:
            visit(name)
    return found


# -- building the result ---------------------------------------------------------------------------


def _build(
    parsed: _Parsed, found: InventoryFile, file: str
) -> tuple[Inventory, dict[str, dict[str, Position]]]:
    depth = _depths(parsed)
    members = {name: _members(name, parsed, {}) for name in parsed.groups}
    order = list(parsed.host_vars)
    groups: dict[str, list[str]] = {}
    for name in parsed.groups:
        groups[name] = [h for h in order if h in members[name]]
    groups["all"] = list(order)
    if "ungrouped" not in groups:
        grouped = {h for name, hosts in groups.items() if name != "all" for h in hosts}
        groups["ungrouped"] = [h for h in order if h not in grouped]
    secret_vars: list[str] = []
    hosts: dict[str, Host] = {}
    origins: dict[str, dict[str, Position]] = {}
    for name in order:
        host_groups = sorted((g for g in parsed.groups if name in members[g]), key=lambda g: (depth[g], g))
        sources = [s for g in host_groups for s in parsed.groups[g].vars] + parsed.host_vars[name]
        hosts[name], origins[name] = _make_host(name, host_groups, sources, found)
        for source in sources:
            for secret in source.values.get("secret_vars") or []:
                if secret not in secret_vars:
                    secret_vars.append(secret)
    inventory = Inventory(found.name, file, hosts, groups, secret_vars)
    return inventory, origins


def _depths(parsed: _Parsed) -> dict[str, int]:
    """Return each group's depth below ``all`` (the longest path), as Ansible orders precedence."""
    depth: dict[str, int] = {}

    def visit(name: str, level: int) -> None:
        if depth.get(name, -1) >= level:
            return
        depth[name] = level
        for child in parsed.groups[name].children:
            visit(child, level + 1)

    visit("all", 0)
    for name in parsed.groups:
        depth.setdefault(name, 1)
    return depth


def _members(name: str, parsed: _Parsed, memo: dict[str, set[str]]) -> set[str]:
    if name not in memo:
        group = parsed.groups[name]
        result = set(group.hosts)
        for child in group.children:
            result |= _members(child, parsed, memo)
        memo[name] = result
    return memo[name]


def _seconds(value: Any) -> float | None:
    return float(value) if value is not None else None


def _make_host(
    name: str, groups: list[str], sources: list[VarsSource], found: InventoryFile
) -> tuple[Host, dict[str, Position]]:
    """Merge a host's variable sources, weakest first, into its Host and the origin of each variable."""
    merged: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    origins: dict[str, Position] = {}
    for source in sources:
        for key, value in source.values.items():
            if key == "secret_vars" or not isinstance(key, str):
                continue
            merged[key] = value
            line, column = locate(source.data, (*source.path, key))
            origins[key] = Position(source.file, line, column)
        for setting, names in CONNECTION_VARS.items():
            for var in names:
                if var in source.values:
                    settings[setting] = source.values[var]
                    break
    known_hosts = settings.get("known_hosts")
    if known_hosts:
        base = found.folder or found.file.parent
        known_hosts = str((base / Path(known_hosts).expanduser()).resolve())
    port = settings.get("port")
    host = Host(
        name=name,
        connection="local" if CONNECTIONS.get(settings.get("connection", "ssh")) == "local" else "ssh",
        address=str(settings.get("address") or name),
        port=int(port) if port is not None else None,
        user=settings.get("user"),
        key_file=settings.get("key_file"),
        known_hosts=known_hosts,
        accept_new_host_keys=bool(settings.get("accept_new_host_keys", False)),
        connect_timeout=_seconds(settings.get("connect_timeout")),
        banner_timeout=_seconds(settings.get("banner_timeout")),
        auth_timeout=_seconds(settings.get("auth_timeout")),
        proxy_jump=proxy_jump(settings["proxy_jump"]) if settings.get("proxy_jump") else [],
        become=bool(settings.get("become", False)),
        become_user=settings.get("become_user"),
        groups=groups,
        vars=merged,
    )
    return host, origins
