"""Everything checked before a run starts, reported at once.

Why all at once and before anything runs: a maintenance run that stops at step 7 of 12 because of a
typo has already put the shop in maintenance mode. ``load_run`` reads the playbook, the inventory and
the command line, and reports every problem of all three in one :class:`InvalidInput`; the CLI turns
it into exit code 2 with nothing run.

What is checked here, on top of what the loaders check: host patterns (``hosts:``, ``--limit``) that
match nothing; variables that templates read and that no source defines, for each selected host
(names registered by *earlier* steps count, and every registered name counts in ``rollback`` and
``always``); templated variables that cannot be rendered (cycles, missing environment variables);
and action parameters whose templates only read known variables, rendered and type-checked for each
host, so ``timeout: "{{ t }}"`` with ``t: abc`` fails here and not at 3 a.m.

Messages never contain a secret's value: they go through the run's Redactor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from maintkit.actions.base import get_action
from maintkit.config.become import apply_play_become, resolve_become
from maintkit.config.extravars import parse_extra_args
from maintkit.config.inventory import is_ignored_interpreter, load_inventory_with_origins
from maintkit.config.playbook import (
    PlaybookSource,
    pydantic_message,
    read_playbook,
    resolve_playbook,
    split_patterns,
)
from maintkit.config.variables import (
    BUILTIN_NAMES,
    COMMAND_LINE,
    SETTINGS,
    add_secrets,
    host_variables,
    parse_extra_vars,
    secret_names,
)
from maintkit.engine.runconfig import RunConfig
from maintkit.model.hosts import Host, Inventory
from maintkit.model.playbooks import Playbook, Step
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.model.results import ActionResult
from maintkit.secrets import MIN_SECRET_LENGTH, Redactor
from maintkit.text.templating import (
    HostVars,
    TemplateError,
    has_template,
    iter_templates,
    render,
    required_variables,
    sole_variable,
    template_error,
    when_template,
)
from maintkit.text.yamlload import did_you_mean, key_path, locate, problem_at


def load_run(
    playbook_ref: str,
    env: str | None,
    inventory_path: str | None,
    limit: list[str] | None,
    var_pairs: list[str],
    var_files: list[str],
    cwd: Path,
    run_id: str = "validate",
    check: bool = False,
    extra: Mapping[str, Any] | None = None,
    extra_args: list[str] | None = None,
) -> RunConfig:
    """Given the command line, return the validated run configuration.

    ``extra`` are a command's own variables (``maintkit restore``'s ``snapshot``, ``force``...):
    above the vars files, below ``-e/--extra-vars`` (``extra_args``, in order) and ``--var``.
    Raise InvalidInput with every problem of the playbook, the inventory and the command line if
    there is any: nothing may run then.
    """
    problems: list[Problem] = []
    source = _read_playbook(playbook_ref, cwd, problems)
    inventory, inventory_origins = _read_inventory(env, inventory_path, cwd, problems)
    extra_origins: dict[str, Position] = {}
    extra_vars = {
        **_read_extra_vars([], var_files, problems, extra_origins),
        **(extra or {}),
        **_read_extra_vars([], [], problems, extra_origins, extra_args or []),
        **_read_extra_vars(var_pairs, [], problems, extra_origins),
    }
    if source is None or source.playbook is None or inventory is None:
        raise InvalidInput(_ordered(problems))
    playbook = source.playbook
    hosts = _select_hosts(playbook, inventory, limit or [], source, problems)
    origins = _origins(hosts, inventory_origins, source, extra_origins)
    redactor = Redactor()
    declared = secret_names(inventory, playbook)
    variables: dict[str, HostVars] = {}
    warnings: list[Problem] = []
    for host in hosts:
        variables[host.name] = host_variables(host, inventory, playbook, extra_vars, run_id, check)
        for name in add_secrets(variables[host.name], declared, redactor):
            where = _var_position(name, host.name, origins)
            message = f"secret '{name}' is shorter than {MIN_SECRET_LENGTH} characters: it cannot be masked"
            warnings.append(Problem(where.file, where.line, where.column, name, message))
        apply_play_become(host, playbook)
        become_problem = resolve_become(host, variables[host.name], redactor)
        if become_problem:
            where = _var_position("become", host.name, origins)
            problems.append(Problem(where.file, where.line, where.column, "become", become_problem))
        for name in filter(is_ignored_interpreter, host.vars):
            where = _var_position(name, host.name, origins)
            message = f"'{name}' is ignored: maintkit runs no Python on the hosts"
            warnings.append(Problem(where.file, where.line, where.column, name, message))
    checker = _HostChecker(playbook, source, origins, redactor, problems)
    for host in hosts:
        checker.check(host, variables[host.name])
    checker.report(len(hosts))
    if problems:
        raise InvalidInput([_redacted(p, redactor) for p in _ordered(problems)])
    return RunConfig(playbook, inventory, hosts, extra_vars, variables, redactor, _dedupe(warnings), origins)


# -- reading the three inputs ----------------------------------------------------------------------


def _read_playbook(ref: str, cwd: Path, problems: list[Problem]) -> PlaybookSource | None:
    try:
        path = resolve_playbook(ref, cwd)
    except InvalidInput as error:
        problems.extend(error.problems)
        return None
    source = read_playbook(path, cwd)
    problems.extend(source.problems)
    return source


def _read_inventory(
    env: str | None, path: str | None, cwd: Path, problems: list[Problem]
) -> tuple[Inventory | None, dict[str, dict[str, Position]]]:
    try:
        return load_inventory_with_origins(env, path, cwd)
    except InvalidInput as error:
        problems.extend(error.problems)
        return None, {}


def _read_extra_vars(
    pairs: list[str],
    files: list[str],
    problems: list[Problem],
    origins: dict[str, Position],
    args: list[str] | None = None,
) -> dict[str, Any]:
    """``--vars-file``/``--var`` (``pairs``, ``files``) or ``-e`` values (``args``), checked."""
    try:
        extra = parse_extra_args(args, origins) if args else parse_extra_vars(pairs, files, origins)
    except InvalidInput as error:
        problems.extend(error.problems)
        extra = _valid_extra_args(args, origins) if args else _valid_extra_vars(pairs, files, origins)
    option = "-e/--extra-vars" if args else "--var"
    for name in extra:
        if name in BUILTIN_NAMES:
            problems.append(
                Problem(COMMAND_LINE, None, None, option, f"'{name}' is set by maintkit; it cannot be given")
            )
    return {k: v for k, v in extra.items() if k not in BUILTIN_NAMES}


def _valid_extra_vars(pairs: list[str], files: list[str], origins: dict[str, Position]) -> dict[str, Any]:
    """The extra variables that are well formed, in precedence order, when some are not.

    Why: dropping them all would add "undefined variable" errors for values that were given.
    """
    extra: dict[str, Any] = {}
    for one_file, one_pair in [*(([f], []) for f in files), *(([], [p]) for p in pairs)]:
        try:
            extra.update(parse_extra_vars(one_pair, one_file, origins))
        except InvalidInput:
            continue  # already reported
    return extra


def _valid_extra_args(args: list[str], origins: dict[str, Position]) -> dict[str, Any]:
    """The well-formed ``-e`` values, in order, when some are not (see :func:`_valid_extra_vars`)."""
    extra: dict[str, Any] = {}
    for arg in args:
        try:
            extra.update(parse_extra_args([arg], origins))
        except InvalidInput:
            continue  # already reported
    return extra


def _select_hosts(
    playbook: Playbook,
    inventory: Inventory,
    limit: list[str],
    source: PlaybookSource,
    problems: list[Problem],
) -> list[Host]:
    """Return the hosts named by ``hosts:`` and ``--limit``; report the patterns that match nothing."""
    known = [*inventory.groups, *inventory.hosts]
    bad = False
    for pattern in playbook.hosts:
        if not inventory.select([pattern]) and pattern not in inventory.groups:
            where = _hosts_path(source.data, pattern)
            hint = did_you_mean(pattern, known)
            message = f"'{pattern}' is no host or group of inventory '{inventory.name}'{hint}"
            problems.append(problem_at(source.file, source.data, where, message))
            bad = True
    selected = inventory.select(playbook.hosts)
    patterns = [p for text in limit for p in split_patterns(text)]
    for pattern in patterns:
        if not inventory.select([pattern]):
            message = (
                f"'{pattern}' matches no host of inventory '{inventory.name}'{did_you_mean(pattern, known)}"
            )
            problems.append(Problem(COMMAND_LINE, None, None, "--limit", message))
            bad = True
    if patterns:
        limited = {h.name for h in inventory.select(patterns)}
        selected = [h for h in selected if h.name in limited]
    if not selected and not bad:
        why = " and --limit" if patterns else ""
        problems.append(problem_at(source.file, source.data, ("hosts",), f"'hosts'{why} select no host"))
    return selected


def _hosts_path(data: Any, pattern: str) -> tuple[Any, ...]:
    value = data.get("hosts") if isinstance(data, dict) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str) and pattern in split_patterns(item):
                return ("hosts", index)
    return ("hosts",)


# -- per-host checks -------------------------------------------------------------------------------


@dataclass
class _TemplatePlace:
    """One place of the playbook holding templates, with what it may read besides the host's vars."""

    path: tuple[Any, ...]
    value: Any
    registers: frozenset[str]


@dataclass
class _Finding:
    position: tuple[str, int | None, int | None, str]
    message: str
    hosts: list[str] = field(default_factory=list)
    suffix_by_host: bool = True
    uses: list[str] = field(default_factory=list)  # the playbook places a wrong variable's value reached


class _HostChecker:
    """Checks templates against each selected host's variables and merges findings across hosts."""

    def __init__(
        self,
        playbook: Playbook,
        source: PlaybookSource,
        origins: dict[str, dict[str, Position]],
        redactor: Redactor,
        problems: list[Problem],
    ) -> None:
        self.playbook = playbook
        self.source = source
        self.origins = origins
        self.redactor = redactor
        self.problems = problems
        self.findings: dict[tuple[Any, ...], _Finding] = {}
        self.all_registers = frozenset(playbook.registers)
        self.sites = list(_sites(playbook, source))

    def check(self, host: Host, variables: HostVars) -> None:
        known = set(variables) | BUILTIN_NAMES
        broken = self._check_templated_vars(host, variables, known)
        for site in self.sites:
            needed = required_variables(site.value) - known - site.registers
            for name in sorted(needed):
                if name in self.all_registers:
                    message = f"variable '{name}' is registered only by a later step"
                else:
                    message = (
                        f"undefined variable '{name}'{did_you_mean(name, sorted(known | site.registers))}"
                    )
                self._found(self._at(site.path), message, host.name)
        self._check_settings(host, variables, broken)
        for index, step in enumerate(self.playbook.steps):
            self._check_params(host, variables, step, ("steps", index), broken)
        for section in ("rollback", "always"):
            for index, step in enumerate(getattr(self.playbook, section)):
                self._check_params(host, variables, step, (section, index), broken)

    def _check_templated_vars(self, host: Host, variables: HostVars, known: set[str]) -> set[str]:
        """Check user-written templated variables: names they read, and that they render.

        Return the names found broken, so that templates reading them are not reported again.
        """
        scope = self._scope(variables)
        broken: set[str] = set()
        for name in sorted(variables.templated):
            needed = required_variables(variables[name]) - known - self.all_registers
            for missing in sorted(needed):
                hint = did_you_mean(missing, sorted(known))
                message = f"variable '{name}' reads undefined variable '{missing}'{hint}"
                self._found(self._var_at(name, host.name), message, host.name)
                broken.add(name)
        for name in sorted(variables.templated):
            if _reads(name, variables, self.all_registers | broken):
                continue
            try:
                render(variables[name], scope, self.redactor)
            except TemplateError as error:
                self._found(self._var_at(name, host.name), str(error), host.name)
                broken.add(name)
        return broken

    def _check_settings(self, host: Host, variables: HostVars, broken: set[str]) -> None:
        """Check the built-in settings (``lock_ttl``, ``lock_dir``...) as the run will read them."""
        for name, problem_of in SETTINGS.items():
            if name not in variables or _reads(name, variables, self.all_registers | broken):
                continue
            value = dict.__getitem__(variables, name)
            if name in variables.templated:
                try:
                    value = render(value, self._scope(variables), self.redactor)
                except TemplateError:
                    continue  # reported by _check_templated_vars
            message = problem_of(value)
            if message:
                self._found(self._var_at(name, host.name), message, host.name)

    def _check_params(
        self, host: Host, variables: HostVars, step: Step, path: tuple[Any, ...], broken: set[str]
    ) -> None:
        """Render the templated parameters that read no register, then type-check them for this host."""
        action = get_action(step.action)
        if action is None:
            return
        fields = action.Params.model_fields
        scope = self._scope(variables)
        known = set(variables) | BUILTIN_NAMES
        rendered: dict[str, Any] = {}
        pending = False
        for key, value in step.params.items():
            if not has_template(value):
                rendered[key] = value
                continue
            if any(template_error(source) for _, source in iter_templates(value)):
                pending = True  # reported with its line when the playbook was read
                continue
            needed = required_variables(value)
            unknown = self.all_registers | broken
            if not needed <= known or any(_reads(n, variables, unknown) for n in needed):
                pending = True  # undefined or broken names are reported elsewhere; registers come at run time
                continue
            extra = fields[key].json_schema_extra if key in fields else None
            shell = isinstance(extra, dict) and bool(extra.get("shell"))
            try:
                rendered[key] = render(value, scope, self.redactor, shell=shell)
            except TemplateError as error:
                self._found(self._at((*path, step.action, key)), str(error), host.name)
                pending = True
        templated = {k for k, v in step.params.items() if has_template(v) and k in rendered}
        if not templated:
            return
        try:
            action.Params.model_validate({k: v for k, v in rendered.items() if k in fields})
        except ValidationError as error:
            for item in error.errors():
                loc = item["loc"]
                if (loc and loc[0] not in templated) or (not loc and pending) or item["type"] == "missing":
                    continue  # literal values were checked when the playbook was read
                site = self._at((*path, step.action, *loc))
                written = self._written_at(host.name, variables, step.params, tuple(loc))
                if written is not None:  # the value came whole from a variable: point where it was written
                    use = f"{site[3]} at {site[0]}" + (f":{site[1]}" if site[1] is not None else "")
                    self._found(written, pydantic_message(item), host.name, use)
                else:
                    self._found(site, f"{pydantic_message(item)} (after rendering the template)", host.name)

    def _written_at(
        self, host: str, variables: HostVars, params: Mapping[str, Any], loc: tuple[Any, ...]
    ) -> tuple[str, int | None, int | None, str] | None:
        """Where the wrong value at ``loc`` of a step's parameters was written, when a template
        handed it over whole from one variable (``{{ cms }}``, ``{{ files }}`` then ``.cms``); else None.
        """
        leaf = _template_at(params, loc)
        if leaf is None:
            return None
        return self._from_variable(sole_variable(leaf[0]), leaf[1], host, variables, set())

    def _from_variable(
        self, name: str | None, inner: tuple[Any, ...], host: str, variables: HostVars, seen: set[str]
    ) -> tuple[str, int | None, int | None, str] | None:
        if name is None or name not in self.origins.get(host, {}) or name not in variables or name in seen:
            return None  # not written by the user (a built-in, maintkit's default), or a loop
        seen.add(name)
        value = dict.__getitem__(variables, name)  # as written: templated variables are not rendered
        if name in variables.templated:
            leaf = _template_at(value, inner)
            if leaf is not None and sole_variable(leaf[0]) is not None:  # a variable passing another on
                found = self._from_variable(sole_variable(leaf[0]), leaf[1], host, variables, seen)
                if found is not None:
                    return found
        return _where(name, inner, host, self.origins, value)

    def _scope(self, variables: HostVars) -> HostVars:
        """Return the host's variables as a step sees them before any runs: registers not run yet."""
        scope = HostVars(variables, templated=variables.templated)
        not_run = ActionResult(skipped=True, msg="not run").as_vars()
        for name in self.all_registers:
            if name not in scope:
                dict.__setitem__(scope, name, dict(not_run))
        return scope

    def _at(self, path: tuple[Any, ...]) -> tuple[str, int | None, int | None, str]:
        line, column = locate(self.source.data, path)
        return (self.source.file, line, column, key_path(path))

    def _var_at(self, name: str, host: str) -> tuple[str, int | None, int | None, str]:
        return _where(name, (), host, self.origins, None)

    def _found(
        self, where: tuple[str, int | None, int | None, str], message: str, host: str, use: str | None = None
    ) -> None:
        finding = self.findings.setdefault((where, message), _Finding(where, message))
        if host not in finding.hosts:
            finding.hosts.append(host)
        if use is not None and use not in finding.uses:
            finding.uses.append(use)

    def report(self, host_count: int) -> None:
        """Add one Problem per finding; name the hosts when not every selected host has it."""
        for finding in self.findings.values():
            file, line, column, path = finding.position
            message = finding.message
            if finding.uses:
                more = f" and {len(finding.uses) - 2} more" if len(finding.uses) > 2 else ""
                message += f" (the value reaches {', '.join(finding.uses[:2])}{more})"
            if host_count > 1 and len(finding.hosts) < host_count:
                message += f" (on {', '.join(finding.hosts)})"
            self.problems.append(Problem(file, line, column, path, message))


def _sites(playbook: Playbook, source: PlaybookSource) -> Iterable[_TemplatePlace]:
    """Yield every template-bearing place of the playbook's steps, with the registers it may read."""
    for section in ("steps", "rollback", "always"):
        earlier: set[str] = set()
        for index, step in enumerate(getattr(playbook, section)):
            registers = frozenset(earlier) if section == "steps" else frozenset(playbook.registers)
            base = (section, _source_index(source, section, step, index))
            if _written(source.data, base, "name") and has_template(step.name):
                yield _TemplatePlace((*base, "name"), step.name, registers)
            if step.when is not None and not isinstance(step.when, bool):
                yield _TemplatePlace((*base, "when"), when_template(step.when), registers)
            for path, value in iter_templates(step.params, (*base, step.action)):
                yield _TemplatePlace(path, value, registers)
            if step.register:
                earlier.add(step.register)


def _template_at(value: Any, loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]] | None:
    """Walk ``loc`` into ``value``; return the first template met on the way and the rest of ``loc``."""
    node = value
    for depth in range(len(loc) + 1):
        if isinstance(node, str):
            return (node, loc[depth:]) if has_template(node) else None
        if depth == len(loc):
            return None
        try:
            node = node[loc[depth]]
        except (KeyError, IndexError, TypeError):
            return None
    return None


def _written(data: Any, path: tuple[Any, ...], key: str) -> bool:
    """Return True when the step at ``path`` was written with ``key`` (not given a default)."""
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict) and key in node


def _source_index(source: PlaybookSource, section: str, step: Step, fallback: int) -> int:
    """Return the index of a step in the written list (invalid steps were dropped from the playbook)."""
    written = source.data.get(section) if isinstance(source.data, dict) else None
    if isinstance(written, list):
        for index in range(len(written)):
            if locate(written, (index,)) == (step.position.line, step.position.column):
                return index
    return fallback


def _reads(name: str, variables: Mapping[str, Any], names: Set[str], seen: set[str] | None = None) -> bool:
    """Return True when ``name`` is one of ``names``, or a templated variable reading one (transitively)."""
    if name in names:
        return True
    templated: Set[str] = getattr(variables, "templated", set())
    if name not in templated:
        return False
    seen = seen if seen is not None else set()
    if name in seen:
        return False
    seen.add(name)
    return any(_reads(n, variables, names, seen) for n in required_variables(variables[name]))


def _origins(
    hosts: list[Host],
    inventory: dict[str, dict[str, Position]],
    source: PlaybookSource,
    extra: dict[str, Position],
) -> dict[str, dict[str, Position]]:
    """Return, per host, where each variable's winning value was written, by precedence:
    inventory < playbook ``vars`` < ``--vars-file`` / ``--var``."""
    written = source.data.get("vars") if isinstance(source.data, dict) else None
    playbook: dict[str, Position] = {}
    if isinstance(written, dict):
        for name in written:
            playbook[name] = Position(source.file, *locate(source.data, ("vars", name)))
    return {host.name: {**inventory.get(host.name, {}), **playbook, **extra} for host in hosts}


def _var_position(name: str, host: str, origins: dict[str, dict[str, Position]]) -> Position:
    """Return where a variable's winning value was written: playbook, inventory or command line."""
    return origins.get(host, {}).get(name) or Position(COMMAND_LINE)


def _where(
    name: str, inner: tuple[Any, ...], host: str, origins: dict[str, dict[str, Position]], value: Any
) -> tuple[str, int | None, int | None, str]:
    """Locate ``inner`` (a key path inside the variable's value) where variable ``name`` was written.

    A value given with ``--var`` is named as such; a written mapping or list points at the line of
    the key or item inside it.
    """
    position = _var_position(name, host, origins)
    if position.file == COMMAND_LINE:
        return (COMMAND_LINE, None, None, key_path((f"--var {name}", *inner)))
    line, column = position.line, position.column
    if inner and getattr(value, "start", None) is not None:
        line, column = locate(value, inner)
    return (position.file, line, column, key_path((name, *inner)))


# -- ordering --------------------------------------------------------------------------------------


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Return problems without duplicates, grouped by file (in order of appearance), by line within."""
    unique = _dedupe(problems)
    files = list(dict.fromkeys(p.file for p in unique))
    return sorted(unique, key=lambda p: (files.index(p.file), p.line or 0, p.column or 0))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _redacted(problem: Problem, redactor: Redactor) -> Problem:
    return dataclasses.replace(problem, message=redactor(problem.message), path=redactor(problem.path))
