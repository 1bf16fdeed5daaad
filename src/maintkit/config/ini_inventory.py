"""Ansible INI inventories (``hosts``, ``[group]``, ``[group:vars]``, ``[group:children]``, ``host k=v``).

Why a translation and not a second loader: the INI file is turned into the data the YAML form would
hold (with the line and column of every key), so both forms share one walker, one set of checks and
one variable precedence, and every mistake in either is reported at its ``file:line``.

Values as Ansible reads them: on a host line a value is a Python literal when it is one
(``ansible_port=2222`` is a number, ``x='a b'`` a string), else the text; in a ``:vars`` section it
is the text, except that the connection settings maintkit types (ports, timeouts, true/false) are
converted as Ansible's connection plugins convert them.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

from maintkit.model.problems import InvalidInput, Problem
from maintkit.text.yamlload import PosDict

#: section suffixes: ``[web:vars]``, ``[web:children]``; ``[web]`` holds hosts
SECTION = re.compile(r"^\[([^\[\]:\s]+)(?::([^\[\]\s]*))?\]\s*$")
#: ``web[01:03]`` or ``db-[a:c]``: Ansible's host ranges
RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")
HOST_PORT = re.compile(r"^([^:\[\]]+):([0-9]{1,5})$")
INT_SETTINGS = frozenset({"ansible_port", "ansible_ssh_port", "port"})
NUMBER_SETTINGS = frozenset({"ansible_ssh_timeout", "ansible_timeout", "ssh_connect_timeout"})
NUMBER_SETTINGS |= frozenset({"ssh_banner_timeout", "ssh_auth_timeout"})
BOOL_SETTINGS = frozenset({"accept_new_host_keys", "ansible_become", "become"})
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def looks_like_ini(text: str) -> bool:
    """Whether a file without a YAML suffix is INI: its first line of content is a section or a host."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "---")):
            continue
        return line.startswith("[") or not (line.endswith(":") or ": " in line or line.startswith("{"))
    return False


def load_ini_inventory(path: Path, file: str) -> PosDict:
    """Given an INI inventory, return it as the YAML form's data; raise InvalidInput with every mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput([Problem(file, None, None, "", f"cannot read the inventory: {error}")]) from None
    reader = _Reader(file)
    for number, raw in enumerate(text.splitlines(), 1):
        reader.line(number, raw)
    if reader.problems:
        raise InvalidInput(reader.problems)
    return reader.data


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.data = PosDict()
        self.data.start = (1, 1)
        self.problems: list[Problem] = []
        self.group, self.kind = "all", "hosts"  # lines before any section are hosts of 'all'

    def line(self, number: int, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            return
        column = len(raw) - len(raw.lstrip()) + 1
        if line.startswith("["):
            self._section(number, column, line)
        elif self.kind == "hosts":
            self._host(number, column, line)
        elif self.kind == "vars":
            self._variable(number, column, line)
        elif self.kind == "children":
            self._child(number, column, line)

    def _section(self, number: int, column: int, line: str) -> None:
        match = SECTION.match(line)
        if not match:
            message = "not a section header: write [group], [group:vars] or [group:children]"
            self._problem(number, column, line, message)
            self.kind = "skip"
            return
        group, suffix = match.group(1), match.group(2)
        if suffix not in (None, "vars", "children"):
            self._problem(number, column, line, f"unknown section kind ':{suffix}'; use :vars or :children")
            self.kind = "skip"
            return
        self.group, self.kind = group, suffix or "hosts"
        self._mapping(self.data, group, number, column)

    def _host(self, number: int, column: int, line: str) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            self._problem(number, column, self.group, "unbalanced quotes on this host line")
            return
        if not tokens:
            return
        name, pairs = tokens[0], tokens[1:]
        variables: dict[str, Any] = {}
        host_port = HOST_PORT.match(name)
        if host_port:  # ``web1:2222``, Ansible's short form of ansible_port
            name, variables["ansible_port"] = host_port.group(1), int(host_port.group(2))
        names = self._expand(name, number, column)
        for index, pair in enumerate(pairs, 1):
            key, sep, value = pair.partition("=")
            if not sep or not key:  # never the text: it may be a password typed with ':' for '='
                self._problem(number, column, name, f"word {index + 1} is not key=value (NAME key=value...)")
                return
            variables[key] = _setting(key, _literal(value))
        group = self._mapping(self.data, self.group, number, column)
        hosts = self._mapping(group, "hosts", number, column)
        col = column + line.index(name) if name in line else column
        for host in names:
            existing = hosts.get(host)
            merged = {**(existing or {}), **variables}
            hosts[host] = self._with_positions(merged, number, col, line) if merged else None
            hosts.positions[host] = (number, col)

    def _variable(self, number: int, column: int, line: str) -> None:
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            self._problem(number, column, self.group, f"not key=value (a line of [{self.group}:vars])")
            return
        group = self._mapping(self.data, self.group, number, column)
        variables = self._mapping(group, "vars", number, column)
        variables[key] = _setting(key, _unquoted(value.strip()))
        variables.positions[key] = (number, column)

    def _child(self, number: int, column: int, line: str) -> None:
        name = line.split()[0]
        if len(line.split()) > 1:
            self._problem(number, column, name, f"one group name a line in [{self.group}:children]")
            return
        group = self._mapping(self.data, self.group, number, column)
        children = self._mapping(group, "children", number, column)
        children[name] = None
        children.positions[name] = (number, column)

    def _expand(self, name: str, number: int, column: int) -> list[str]:
        match = RANGE.search(name)
        if not match:
            return [name]
        start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
        head, tail = name[: match.start()], name[match.end() :]
        if start.isdigit() and end.isdigit():
            width = len(start) if start.startswith("0") else 0
            values = [str(n).zfill(width) for n in range(int(start), int(end) + 1, step)]
        elif start.isalpha() and end.isalpha():
            values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
        else:
            self._problem(number, column, name, "a host range is [01:10] or [a:f]")
            return []
        if not values:
            self._problem(number, column, name, "this host range is empty (its start is after its end)")
        return [n for value in values for n in self._expand(head + value + tail, number, column)]

    def _mapping(self, parent: PosDict, key: str, number: int, column: int) -> PosDict:
        value = parent.get(key)
        if not isinstance(value, PosDict):
            value = PosDict()
            value.start = (number, column)
            parent[key] = value
            parent.positions[key] = (number, column)
        return value

    def _with_positions(self, values: dict[str, Any], number: int, column: int, line: str) -> PosDict:
        result = PosDict(values)
        result.start = (number, column)
        for key in values:
            at = line.find(f"{key}=")
            result.positions[key] = (number, at + 1 if at >= 0 else column)
        return result

    def _problem(self, number: int, column: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, number, column, key, message))


def _literal(text: str) -> Any:
    """A host-line value as Ansible reads it: a Python literal when it is one, else the text."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, str | int | float | bool | list | dict) else text


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _setting(key: str, value: Any) -> Any:
    """Connection settings maintkit types, converted from text as Ansible's connection plugins do."""
    if not isinstance(value, str):
        return value
    if key in INT_SETTINGS and value.isdigit():
        return int(value)
    if key in NUMBER_SETTINGS:
        try:
            return float(value)
        except ValueError:
            return value
    if key in BOOL_SETTINGS and value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    return value
