"""Loading YAML that remembers where every key and item was written.

Why our own loader: every problem maintkit reports points at ``file:line:column``, long after
parsing. PyYAML's nodes carry marks but the plain dicts and lists it builds forget them, so we build
dict and list subclasses that keep a ``positions`` map (1-based line and column of each key or item).
Why duplicate keys are errors: YAML keeps the last one silently, and a playbook whose second
``steps:`` hides the first is a maintenance run that does something else than what was reviewed.
"""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import yaml

from maintkit.model.problems import InvalidInput, Problem

try:  # libyaml is much faster and still gives every node its marks
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

Pos = tuple[int, int]
MERGE_TAG = "tag:yaml.org,2002:merge"
#: the most values a document may hold once its aliases are expanded; a playbook holds a few hundred
MAX_NODES = 50_000
#: the deepest nesting of mappings and lists a document may have; a playbook needs fewer than ten
MAX_DEPTH = 64


#: documents parsed ahead (:func:`parse_ahead`), by their exact text: their data, pickled
_PARSED_AHEAD: dict[str, bytes] = {}


class PosDict(dict[Any, Any]):
    """A dict that remembers the position of each key, and of itself (``start``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positions: dict[Any, Pos] = {}
        self.start: Pos | None = None


class PosList(list[Any]):
    """A list that remembers the position of each item, and of itself (``start``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.positions: list[Pos] = []
        self.start: Pos | None = None


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


class PositionLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader building :class:`PosDict` / :class:`PosList` and collecting duplicate keys."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        # (the mapping, where, key, first definition)
        self.duplicates: list[tuple[PosDict, Pos, str, Pos]] = []


def _construct_map(loader: PositionLoader, node: yaml.MappingNode) -> Iterable[PosDict]:
    data = PosDict()
    data.start = _pos(node.start_mark)
    yield data
    _find_duplicates(loader, node, data)
    loader.flatten_mapping(node)  # resolves ``<<: *anchor`` merges
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=False)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            )
        data[key] = loader.construct_object(value_node, deep=False)
        data.positions[key] = _pos(key_node.start_mark)


def _find_duplicates(loader: PositionLoader, node: yaml.MappingNode, data: PosDict) -> None:
    """Record keys written twice in this mapping (merged ``<<`` keys may be overridden, that is fine)."""
    seen: dict[Any, Pos] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=False)
        if key in seen:
            loader.duplicates.append((data, _pos(key_node.start_mark), str(key), seen[key]))
        else:
            seen[key] = _pos(key_node.start_mark)


def _construct_seq(loader: PositionLoader, node: yaml.SequenceNode) -> Iterable[PosList]:
    data = PosList()
    data.start = _pos(node.start_mark)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=False))
        data.positions.append(_pos(item.start_mark))


PositionLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
PositionLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _syntax_problem(error: yaml.YAMLError, file: str, source: str) -> Problem:
    """Given a PyYAML error and the text, return a Problem at its mark with a message a person can act on."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    if isinstance(error, _ShapeError):
        return Problem(file, line, column, "", str(error.problem))
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML forbids (NUL, other controls)
        line, column = _line_column(source, error.position)
        return Problem(file, line, column, "", f"a character YAML does not allow ({_char(error.character)})")
    if isinstance(error, yaml.MarkedYAMLError):
        text = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context_mark is not None:
            text = f"{error.problem} ({error.context} at line {error.context_mark.line + 1})"
    else:
        text = str(error)
    if _tab_near(source, line, column):
        text = "a tab character where YAML needs spaces: indent with spaces, never tabs"
    return Problem(file, line, column, "", f"YAML syntax error: {text}")


def _line_column(text: str, offset: int) -> Pos:
    """Return the 1-based (line, column) of a character offset in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _char(character: Any) -> str:
    code = ord(character) if isinstance(character, str) else int(character)
    return "NUL" if code == 0 else f"U+{code:04X}"


def _check_shape(root: yaml.Node, file: str) -> None:
    """Refuse a document whose expanded size or depth is out of bounds, or whose aliases loop.

    Why before constructing: aliases share one node, so "billion laughs" (nine aliases of nine
    aliases of ...) is small to parse but every later walk of the values (template scans, secret
    collection, validation per host) goes through the expanded tree, and a self-referencing alias
    or very deep nesting makes those walks recurse until Python gives up. One iterative walk of the
    node graph, each node sized once, bounds all of it with the line of the offending node.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]  # (node, 0 = enter, 1 = leave)
    while stack:
        node, state = stack.pop()
        key = id(node)
        children = _children(node)
        if state == 0:
            if key in sizes:
                continue
            if key in visiting:
                raise _shape_error(file, node, "an alias refers to a node that contains it (a loop)")
            visiting.add(key)
            if len(visiting) > MAX_DEPTH:
                raise _shape_error(file, node, f"nested deeper than {MAX_DEPTH} levels")
            stack.append((node, 1))
            for child in children:
                if id(child) in visiting:
                    raise _shape_error(file, child, "an alias refers to a node that contains it (a loop)")
                if id(child) not in sizes:
                    stack.append((child, 0))
            continue
        visiting.discard(key)
        sizes[key] = 1 + sum(sizes[id(c)] for c in children)
        heights[key] = 1 + max((heights[id(c)] for c in children), default=0)
        if sizes[key] > MAX_NODES:
            message = f"aliases expand to more than {MAX_NODES} values (an alias bomb?); write the values out"
            raise _shape_error(file, node, message)
        if heights[key] > MAX_DEPTH:
            raise _shape_error(file, node, f"nested deeper than {MAX_DEPTH} levels")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


class _ShapeError(yaml.MarkedYAMLError):
    """A document too big, too deep or looping: reported like a syntax error, at the node's line."""


def _shape_error(file: str, node: yaml.Node, message: str) -> _ShapeError:
    return _ShapeError(problem=message, problem_mark=node.start_mark)


def _tab_near(source: str, line: int | None, column: int | None) -> bool:
    """Return True when the error's line has a tab at or before the error's column (tab indentation)."""
    if line is None:
        return False
    lines = source.splitlines()
    if not 0 < line <= len(lines):
        return False
    text = lines[line - 1]
    indent = text[: len(text) - len(text.lstrip(" \t"))]
    return "\t" in indent or (column is not None and text[column - 1 : column] == "\t")


def parse_yaml(text: str, file: str) -> Any:
    """Given YAML text and its file name, return the data with positions.

    Raise InvalidInput on a syntax error, on duplicate keys (all of them at once), or when the
    document is empty.
    """
    ahead = _PARSED_AHEAD.get(text)
    if ahead is not None:
        return pickle.loads(ahead)  # noqa: S301 (our own pickle, made in this process or its parent)
    loader = PositionLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_shape(node, file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise InvalidInput([_syntax_problem(error, file, text)]) from None
    except RecursionError:  # pragma: no cover - _check_shape bounds the depth before this can happen
        raise InvalidInput([Problem(file, 1, None, "", f"nested deeper than {MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise InvalidInput(_duplicate_problems(loader.duplicates, data, file))
    if data is None:
        raise InvalidInput([Problem(file, 1, None, "", "the file is empty")])
    return data


def _duplicate_problems(
    duplicates: list[tuple[PosDict, Pos, str, Pos]], data: Any, file: str
) -> list[Problem]:
    """Given the duplicates the loader met, return one Problem each, in file order, with key paths."""
    paths: dict[int, tuple[Any, ...]] = {}
    _index_paths(data, (), paths)
    problems = []
    for mapping, (line, column), key, first in sorted(duplicates, key=lambda d: d[1]):
        path = (*paths.get(id(mapping), ()), key)
        message = f"duplicate key '{key}' (first written at line {first[0]}; YAML would keep only the last)"
        problems.append(Problem(file, line, column, key_path(path), message))
    return problems


def _index_paths(node: Any, path: tuple[Any, ...], paths: dict[int, tuple[Any, ...]]) -> None:
    if id(node) in paths:  # aliases may share a node
        return
    if isinstance(node, dict):
        paths[id(node)] = path
        for key, value in node.items():
            _index_paths(value, (*path, key), paths)
    elif isinstance(node, list):
        paths[id(node)] = path
        for index, value in enumerate(node):
            _index_paths(value, (*path, index), paths)


def parse_ahead(paths: Iterable[str | Path]) -> None:
    """Parse these files now, so that a later :func:`parse_yaml` of the same text gets a copy.

    Why: a fleet's sites are forks of one fork server (:mod:`maintkit.cli.sitechild`), and each
    site's run parses the inventory it shares with hundreds of others: 100 ms of CPU per site for a
    200-host inventory, most of a small site's run (docs/performance.md). Parsed once in the fork
    server, each run unpickles a private copy in about a millisecond. Keyed by the whole text, so a
    file changed since is parsed again; a file that is missing or invalid is left for the run to
    report as it always does.
    """
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
            _PARSED_AHEAD[text] = pickle.dumps(parse_yaml(text, str(path)), pickle.HIGHEST_PROTOCOL)
        except (OSError, UnicodeDecodeError, InvalidInput):
            continue


def load_yaml(path: str | Path, name: str | None = None) -> Any:
    """Given a YAML file, return its data with positions. Raise InvalidInput if unreadable or invalid.

    ``name`` is how problems name the file (default: the path as given).
    """
    file = name or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput([Problem(file, None, None, "", "file not found")]) from None
    except UnicodeDecodeError as error:
        raise InvalidInput([_not_utf8(path, error, file)]) from None
    except OSError as error:
        message = f"cannot read the file: {error.strerror}"
        raise InvalidInput([Problem(file, None, None, "", message)]) from None
    return parse_yaml(text, file)


def _not_utf8(path: str | Path, error: UnicodeDecodeError, file: str) -> Problem:
    """Locate the first byte that is not UTF-8 (a Latin-1 "é", a binary file) at its line and column."""
    data = error.object if isinstance(error.object, bytes) else Path(path).read_bytes()
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    byte = data[error.start : error.start + 1].hex()
    return Problem(file, line, column, "", f"byte 0x{byte} is not UTF-8: save the file as UTF-8")


def locate(data: Any, path: tuple[Any, ...] | list[Any]) -> tuple[int | None, int | None]:
    """Given loaded data and a key path, return the (line, column) of the deepest element known.

    Why "deepest known": a value computed from the input (a normalized shorthand, a default) has no
    position of its own, and its nearest written ancestor is the best place to point at.
    """
    best: tuple[int | None, int | None] = getattr(data, "start", None) or (None, None)
    node = data
    for key in path:
        position = _position_of(node, key)
        if position is None:
            break
        best = position
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return best


def _position_of(node: Any, key: Any) -> Pos | None:
    if isinstance(node, PosDict):
        return node.positions.get(key)
    if isinstance(node, PosList) and isinstance(key, int) and 0 <= key < len(node.positions):
        return node.positions[key]
    return None


def key_path(path: tuple[Any, ...] | list[Any]) -> str:
    """Given a key path, return how people write it: ``steps[2].shell.cmd``."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else str(key)
    return text


def problem_at(file: str, data: Any, path: tuple[Any, ...] | list[Any], message: str) -> Problem:
    """Return a Problem located at the deepest known position of ``path`` in ``data``."""
    line, column = locate(data, path)
    if line is None and not path and not isinstance(data, PosDict | PosList):
        line = 1  # the document is a plain value (a scalar playbook): it is the whole file
    return Problem(file, line, column, key_path(path), message)


def type_name(value: Any) -> str:
    """Return a YAML-ish name of a value's type, for messages like "must be a list, not a string"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or ``""``."""
    match = closest(word, choices)
    return f" (did you mean '{match}'?)" if match else ""


def closest(word: Any, choices: Iterable[str]) -> str | None:
    """Return the one of ``choices`` closest to ``word`` (a likely typo of it), or None."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def display_path(path: str | Path, cwd: Path | None = None) -> str:
    """Return ``path`` relative to ``cwd`` when it is inside it (shorter messages), else as is."""
    if cwd is not None:
        try:
            return str(Path(path).resolve().relative_to(cwd.resolve()))
        except ValueError:
            pass
    return str(path)
