"""Finding playbooks and reading them into :class:`~maintkit.model.playbooks.Playbook`.

Why so strict: a playbook runs against production at 3 a.m. from cron. A misspelt ``retires: 3``
that silently means "no retries", or two actions in one step of which one silently wins, must stop
the run before it starts, with the line to fix. Everything that can be checked without knowing a
host is checked here: structure, common keys, action parameters (types included, for values that are
not templates), template syntax and ``when`` syntax. What depends on a host's variables is checked
by :mod:`maintkit.config.validate`.
"""

from __future__ import annotations

import importlib.resources
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from maintkit.actions.base import Action, available_actions, get_action
from maintkit.config.variables import BUILTIN_NAMES
from maintkit.model.playbooks import COMMON_STEP_KEYS, Playbook, Step
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.text.templating import check_expression, has_template, iter_templates, template_error
from maintkit.text.yamlload import (
    closest,
    did_you_mean,
    display_path,
    load_yaml,
    locate,
    problem_at,
    type_name,
)

TOP_KEYS = (
    "name",
    "description",
    "hosts",
    "serial",
    "max_parallel",
    "vars",
    "secret_vars",
    "steps",
    "rollback",
    "always",
    "become",
    "become_user",
    "become_method",
)
SECTIONS = ("steps", "rollback", "always")
#: Ansible's task-level become keys: refused with the reason (become is per host here)
STEP_BECOME_KEYS = ("become", "become_user", "become_method")
SUFFIXES = (".yml", ".yaml")
PERCENT = re.compile(r"^\s*(\d+)\s*%\s*$")


# -- finding ---------------------------------------------------------------------------------------


def resolve_playbook(ref: str, cwd: Path) -> Path:
    """Given a playbook reference, return its file: a path, then ``./playbooks/NAME.yml`` (``.yaml``),
    then a playbook shipped with maintkit.

    Raise InvalidInput naming every place tried (and the closest known name) if none exists.
    """
    tried: list[str] = []
    direct = cwd / ref
    if direct.is_file():
        return direct
    tried.append(display_path(direct, cwd))
    name = Path(ref).name
    for suffix in SUFFIXES:
        stem = name[: -len(suffix)] if name.endswith(suffix) else name
        if stem != name:
            name = stem
    if "/" not in ref:
        for suffix in SUFFIXES:
            local = cwd / "playbooks" / f"{name}{suffix}"
            if local.is_file():
                return local
            tried.append(display_path(local, cwd))
        shipped = shipped_playbooks()
        if name in shipped:
            return shipped[name]
        tried.append(f"the playbooks shipped with maintkit ({', '.join(sorted(shipped)) or 'none'})")
        known = list(shipped) + _local_names(cwd)
        hint = did_you_mean(name, known)
    else:
        hint = ""
    message = f"no playbook '{ref}'{hint}; tried {', '.join(tried)}"
    raise InvalidInput([Problem(ref, None, None, "", message)])


def shipped_playbooks() -> dict[str, Path]:
    """Return name -> file of the playbooks shipped with maintkit (the package ``maintkit.playbooks``,
    built from the top-level ``playbooks/`` folder)."""
    folder = importlib.resources.files("maintkit.playbooks")
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        if entry.name.endswith(SUFFIXES) and entry.is_file():
            found.setdefault(entry.name.rsplit(".", 1)[0], Path(str(entry)))
    return found


def _local_names(cwd: Path) -> list[str]:
    folder = cwd / "playbooks"
    if not folder.is_dir():
        return []
    return [p.stem for p in folder.iterdir() if p.suffix in SUFFIXES]


# -- loading ---------------------------------------------------------------------------------------


@dataclass
class PlaybookSource:
    """A playbook with what it was read from: its data (with positions), file name and problems."""

    playbook: Playbook | None
    data: Any
    file: str
    problems: list[Problem]


def load_playbook(path: str | Path, cwd: Path | None = None) -> Playbook:
    """Given a playbook file, return the playbook. Raise InvalidInput with every problem found."""
    source = read_playbook(path, cwd)
    if source.problems or source.playbook is None:
        raise InvalidInput(source.problems)
    return source.playbook


def read_playbook(path: str | Path, cwd: Path | None = None) -> PlaybookSource:
    """Given a playbook file, return what could be read of it and every problem, without raising.

    Why not raise: validation goes on with the inventory and the valid steps, so that one run of
    ``maintkit validate`` reports everything wrong at once.
    """
    file = display_path(path, cwd)
    try:
        data = load_yaml(path, file)
    except InvalidInput as error:
        return PlaybookSource(None, None, file, list(error.problems))
    playbook, problems = parse_playbook(data, file, str(path))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return PlaybookSource(playbook, data, file, problems)


def parse_playbook(data: Any, file: str, path: str) -> tuple[Playbook | None, list[Problem]]:
    """Given loaded YAML, return the playbook (valid steps only) and the problems found."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        message = f"a playbook must be a mapping (name, steps, ...), not {type_name(data)}"
        return None, [problem_at(file, data, (), message)]
    for key in data:
        if key not in TOP_KEYS:
            hint = did_you_mean(key, TOP_KEYS) or f"; a playbook has {', '.join(TOP_KEYS)}"
            problems.append(problem_at(file, data, (key,), f"unknown key '{key}'{hint}"))
    check = _Checker(file, data, problems)
    playbook = Playbook(
        name=check.name(),
        path=path,
        description=check.optional_str("description"),
        hosts=check.hosts(),
        serial=check.serial(),
        max_parallel=check.positive_int("max_parallel", 10),
        vars=check.variables(),
        secret_vars=check.names_list("secret_vars"),
        become=check.optional_bool("become"),
        become_user=check.optional_str("become_user") or None,
    )
    if data.get("become_method", "sudo") != "sudo":
        check.fail(("become_method",), "'become_method' must be 'sudo' (the only one maintkit supports)")
    for section in SECTIONS:
        setattr(playbook, section, check.steps(section))
    return playbook, problems


class _Checker:
    """Reads the top-level keys of one playbook, recording a Problem for each wrong value."""

    def __init__(self, file: str, data: dict[Any, Any], problems: list[Problem]) -> None:
        self.file = file
        self.data = data
        self.problems = problems

    def fail(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(problem_at(self.file, self.data, path, message))

    def name(self) -> str:
        value = self.data.get("name")
        if "name" not in self.data:
            self.fail((), "the playbook has no 'name'")
        elif not isinstance(value, str) or not value.strip():
            self.fail(("name",), f"'name' must be a non-empty string, not {type_name(value)}")
        else:
            return value
        return ""

    def optional_str(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail((key,), f"'{key}' must be a string, not {type_name(value)}")
            return ""
        return value

    def optional_bool(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail((key,), f"'{key}' must be true or false, not {_show(value)}")
        return None

    def hosts(self) -> list[str]:
        value = self.data.get("hosts", "all")
        if isinstance(value, str):
            patterns = split_patterns(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            patterns = [p for v in value for p in split_patterns(v)]
        else:
            self.fail(
                ("hosts",), f"'hosts' must be a group or host name or a list of them, not {type_name(value)}"
            )
            return ["all"]
        if not patterns:
            self.fail(("hosts",), "'hosts' names no host or group")
            return ["all"]
        return patterns

    def serial(self) -> int | str | None:
        value = self.data.get("serial")
        if value is None:
            return None
        message = "'serial' must be a number of hosts (1 or more) or a percentage from 1% to 100%"
        if _is_int(value) and value >= 1:
            return value
        match = PERCENT.match(value) if isinstance(value, str) else None
        if match and 1 <= int(match.group(1)) <= 100:
            return f"{int(match.group(1))}%"
        self.fail(("serial",), f"{message}, not {_show(value)}")
        return None

    def positive_int(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail((key,), f"'{key}' must be an integer of 1 or more, not {_show(value)}")
            return default
        return value

    def variables(self) -> dict[str, Any]:
        value = self.data.get("vars")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(("vars",), f"'vars' must be a mapping, not {type_name(value)}")
            return {}
        result = {}
        for name, item in value.items():
            where = ("vars", name)
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                self.fail(where, f"'{name}' is not a valid variable name (letters, digits and _)")
            elif name in BUILTIN_NAMES:
                self.fail(where, f"'{name}' is set by maintkit; choose another name")
            else:
                for sub, source in iter_templates(item, where):
                    message = template_error(source)
                    if message:
                        self.fail(sub, message)
                result[name] = item
        return result

    def names_list(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail((key,), f"'{key}' must be a list of variable names, not {type_name(value)}")
            return []
        return list(value)

    def steps(self, section: str) -> list[Step]:
        value = self.data.get(section)
        if value is None:
            if section == "steps":
                self.fail((), "the playbook has no 'steps'")
            return []
        if not isinstance(value, list):
            self.fail((section,), f"'{section}' must be a list of steps, not {type_name(value)}")
            return []
        if not value and section == "steps":
            self.fail((section,), "'steps' is empty")
        result = []
        for index, raw in enumerate(value):
            step = parse_step(raw, self.file, self.data, (section, index), self.problems)
            if step is not None:
                result.append(step)
        return result


def split_patterns(text: str) -> list[str]:
    """Split a host pattern list written Ansible's way (``web,db`` or ``web:db``) into names."""
    return [p.strip() for p in re.split(r"[,:]", text) if p.strip()]


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str | int | float) else type_name(value)


# -- steps -----------------------------------------------------------------------------------------


def parse_step(raw: Any, file: str, data: Any, path: tuple[Any, ...], problems: list[Problem]) -> Step | None:
    """Given one step as written, return it as a Step, or None when it is unusable.

    Every problem found is appended to ``problems``; a step with wrong common keys or parameters
    is still returned when its action is known, so later checks can look at its templates.
    """
    line, column = locate(data, path)
    if not isinstance(raw, dict):
        message = f"a step must be a mapping (name, one action and its parameters), not {type_name(raw)}"
        problems.append(problem_at(file, data, path, message))
        return None
    fail = _failer(file, data, path, problems)
    action_name = _step_action(raw, fail)
    common = _common_keys(raw, fail)
    if "tags" in common and path[0] != "steps":
        fail(("tags",), f"tags select among 'steps'; '{path[0]}' steps always run as written")
    if action_name is None:
        return None
    action = get_action(action_name)
    assert action is not None  # _step_action only returns registered names
    params = action.normalize(raw[action_name])
    if not isinstance(params, Mapping):
        shorthand = f" or a {action.shorthand} string" if action.shorthand else ""
        fail(
            (action_name,),
            f"parameters of '{action_name}' must be a mapping{shorthand}, not {type_name(params)}",
        )
        return None
    params = dict(params)
    problems.extend(check_params(action, params, file, data, (*path, action_name)))
    for sub, source in iter_templates(params, (*path, action_name)):
        error = template_error(source)
        if error:
            problems.append(problem_at(file, data, sub, error))
    return Step(
        name=common.get("name") or default_step_name(action, raw[action_name], params),
        action=action_name,
        params=params,
        position=Position(file, line, column),
        **{k: v for k, v in common.items() if k != "name"},
    )


def _failer(file: str, data: Any, path: tuple[Any, ...], problems: list[Problem]) -> Any:
    def fail(sub: tuple[Any, ...], message: str) -> None:
        problems.append(problem_at(file, data, (*path, *sub), message))

    return fail


def _step_action(raw: dict[Any, Any], fail: Any) -> str | None:
    """Return the step's one action name; report none, several, or unknown ones through ``fail``."""
    actions = available_actions()
    found = [k for k in raw if k in actions]
    unknown_action = False
    for key in raw:
        if key in actions or key in COMMON_STEP_KEYS or key in STEP_KEY_ALIASES:
            continue
        if key in STEP_BECOME_KEYS:
            fail(
                (key,),
                f"'{key}' on a step is not supported: set become on the play (the playbook's top "
                "level) or in the inventory (become: true, become_user); every step of a host then "
                "runs through sudo",
            )
            continue
        match = closest(key, [*COMMON_STEP_KEYS, *actions])
        if match in actions:
            unknown_action = True
            fail((key,), f"unknown action '{key}' (did you mean '{match}'?)")
        elif match:
            fail((key,), f"unknown key '{key}' (did you mean '{match}'?)")
        elif not found:
            unknown_action = True
            fail((key,), f"unknown action '{key}'; actions: {', '.join(actions)}")
        else:
            fail((key,), f"unknown key '{key}'")
    if not found:
        if not unknown_action:
            fail((), f"step has no action; one of: {', '.join(actions)}")
        return None
    if len(found) > 1:
        words = {2: "two", 3: "three"}.get(len(found), str(len(found)))
        listed = ", ".join(found[:-1]) + f" and {found[-1]}"
        fail((found[1],), f"step has {words} actions: {listed}; a step runs exactly one")
        return None
    return found[0]


#: step keys as Ansible spells them -> maintkit's (``retries: 5`` with ``delay: 10``)
STEP_KEY_ALIASES = {"delay": "retry_delay"}


def _common_keys(raw: dict[Any, Any], fail: Any) -> dict[str, Any]:
    """Return the step's common keys, checked; report each wrong one through ``fail``."""
    result: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # maintkit's key -> the alias written, for the messages
    for alias, key in STEP_KEY_ALIASES.items():
        if alias in raw and key in raw:
            fail((alias,), f"'{alias}' is '{key}' as Ansible spells it; give one of them")
        elif alias in raw:
            raw = {**{k: v for k, v in raw.items() if k != alias}, key: raw[alias]}
            spelled[key] = alias
    checks = {
        "name": (_is_name, "a non-empty string"),
        "when": (lambda v: isinstance(v, str | bool) and v != "", "an expression (string) or true/false"),
        "retries": (lambda v: _is_int(v) and v >= 0, "an integer of 0 or more"),
        "retry_delay": (lambda v: _is_number(v) and v >= 0, "a number of seconds, 0 or more"),
        "timeout": (lambda v: v is None or (_is_number(v) and v > 0), "a number of seconds greater than 0"),
        "register": (lambda v: isinstance(v, str), "a variable name"),
        "ignore_errors": (lambda v: isinstance(v, bool), "true or false"),
        "run_once": (lambda v: isinstance(v, bool), "true or false"),
        "tags": (_is_tags, "a tag name or a list of tag names"),
    }
    for key, (ok, expected) in checks.items():
        if key not in raw:
            continue
        value = raw[key]
        written = spelled.get(key, key)
        if not ok(value):
            fail((written,), f"'{written}' must be {expected}, not {_show(value)}")
            continue
        message = _extra_check(key, value)
        if message:
            fail((written,), message)
            continue
        result[key] = float(value) if key in ("retry_delay", "timeout") and value is not None else value
    if "tags" in result:
        result["tags"] = split_tags(result["tags"])
    return result


def _is_tags(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, str) and split_tags(v) for v in values)


def split_tags(value: str | list[str]) -> list[str]:
    """Tags as Ansible reads them: ``a``, ``a,b`` or ``[a, b]``, without blanks or repeats."""
    values = value if isinstance(value, list) else [value]
    tags: list[str] = []
    for one in values:
        for tag in (t.strip() for t in one.split(",")):
            if tag and tag not in tags:
                tags.append(tag)
    return tags


def _extra_check(key: str, value: Any) -> str | None:
    if key == "register":
        if not value.isidentifier() or keyword.iskeyword(value):
            return f"'register' must be a variable name (letters, digits and _), not {value!r}"
        if value in BUILTIN_NAMES:
            return f"'register: {value}' would hide the variable maintkit sets; choose another name"
    if key == "when":
        return check_expression(value)
    if key == "name" and has_template(value):
        return template_error(value)
    return None


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def default_step_name(action: Action, raw: Any, params: Mapping[str, Any]) -> str:
    """Return a step's name when none is written: the action and a short summary of its main value."""
    value = raw if isinstance(raw, str) else params.get(action.shorthand or "")
    if not isinstance(value, str) or not value.strip():
        return action.name
    summary = value.strip().splitlines()[0]
    if len(summary) > 50 or "\n" in value.strip():
        summary = summary[:47] + "..."
    return f"{action.name}: {summary}"


# -- action parameters -----------------------------------------------------------------------------


def check_params(
    action: Action, params: Mapping[str, Any], file: str, data: Any, path: tuple[Any, ...]
) -> list[Problem]:
    """Given a step's normalized parameters, return the problems with them, at each parameter's line.

    Unknown and missing parameters are found by name. Types (and the model's validators) are checked
    by validating the model once with the templated parameters left out: errors about those (and
    model-wide errors, which may depend on them) are ignored, since their values are only known after
    rendering. Why the model and not one TypeAdapter per field: field validators (``status: 200``
    meaning ``[200]``) run only in the model.
    """
    problems: list[Problem] = []
    fields = action.Params.model_fields
    accepted = {f.alias or name: name for name, f in fields.items()}
    for key in params:
        if key not in accepted:
            hint = did_you_mean(key, accepted) or f"; '{action.name}' takes {', '.join(accepted) or 'none'}"
            problems.append(problem_at(file, data, (*path, key), f"unknown parameter '{key}'{hint}"))
    for key, name in accepted.items():
        if fields[name].is_required() and key not in params:
            problems.append(
                problem_at(file, data, path, f"missing required parameter '{key}' of '{action.name}'")
            )
    templated = {key for key, value in params.items() if has_template(value)}
    literal = {k: v for k, v in params.items() if k in accepted and k not in templated}
    try:
        action.Params.model_validate(literal)
    except ValidationError as error:
        for item in error.errors():
            loc = item["loc"]
            if item["type"] in ("missing", "extra_forbidden"):
                continue  # reported above, by name
            if templated and (not loc or loc[0] in templated):
                continue
            problems.append(problem_at(file, data, (*path, *loc), pydantic_message(item)))
    return problems


def pydantic_message(item: Mapping[str, Any]) -> str:
    """Return a pydantic error's message without pydantic's "Value error, " prefix, and never the input."""
    message = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message
