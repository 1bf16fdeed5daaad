"""Property-based tests of the loaders and the validator (Hypothesis).

Mutations of the shipped playbooks and the example inventory (keys renamed, values of the wrong
type, nodes deleted or duplicated, random unicode, deep nesting, anchors and aliases, raw text
edits) must only ever give a clean result or exit 2 with file:line: never a traceback, a hang, or
a command on a host. "Clean" means validation passed and the run would have started: the engine is
replaced by a recorder, so nothing runs either way.

Examples are bounded (``max_examples``, a deadline per example) so this stays a few seconds of the
suite. When Hypothesis finds a failing example, add it to ``tests/corpus/`` as a case.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maintkit.cli import cli
from maintkit.config.playbook import shipped_playbooks

ROOT = Path(__file__).resolve().parents[2]
DEMO_INVENTORY = (ROOT / "inventories" / "demo.yml").read_text(encoding="utf-8")
PLAYBOOKS = sorted(shipped_playbooks().items())
ERROR = re.compile(r"^error: (?P<file>[^:\s]+(?: line)?)(?::(?P<line>\d+))?", re.MULTILINE)
#: a bad input must be refused in well under this (validation takes milliseconds)
SECONDS_PER_EXAMPLE = 5.0

#: examples per test; MAINTKIT_FUZZ_EXAMPLES=500 for a long local session
EXAMPLES = int(os.environ.get("MAINTKIT_FUZZ_EXAMPLES", "12"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=SECONDS_PER_EXAMPLE),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class WouldRun(Exception):
    """Raised instead of building the engine: validation passed, and nothing may run in a fuzz test."""


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.sampled_from(
            ["{{ x }}", "{{ site_root | defualt('x') }}", "{% if %}", "{{ 'a' | raw }}", "..", ""]
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn, data: Any) -> Any:
    """Apply one to three structural mutations to a copy of ``data``."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            return draw(_values())
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        kind = draw(st.sampled_from(["rename", "retype", "delete", "duplicate", "unicode", "deep", "alias"]))
        if kind == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif kind == "retype":
            parent[key] = draw(_values())
        elif kind == "delete":
            del parent[key]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif kind == "unicode":
            parent[key] = draw(st.text(min_size=1, max_size=40))
        elif kind == "deep":
            value = parent[key]
            for _level in range(draw(st.integers(10, 120))):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[key] = value
        elif kind == "alias":  # the same object twice: yaml.dump writes an anchor and an alias
            others = [p for p in paths if p[: len(path)] != path and path[: len(p)] != p]  # no loops
            if others:
                shared = draw(st.sampled_from(others))
                parent[key] = _parent(data, shared)[shared[-1]]
                return data  # last mutation: paths through shared nodes would multiply
    return data


@st.composite
def text_edits(draw: st.DrawFn, text: str) -> str:
    """Edit the YAML text itself: a line deleted, duplicated or cut, random characters inserted."""
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["delete", "duplicate", "insert", "cut"]))
        if kind == "delete" and len(lines) > 1:
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        elif kind == "insert":
            line = lines[index]
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(st.text(min_size=1, max_size=8)) + line[at:]
        elif kind == "cut":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "".join(lines)


def check(playbook_text: str | bytes, inventory_text: str | bytes) -> None:
    """Run ``maintkit run`` on the inputs with the engine replaced; assert a clean result or exit 2."""
    with (
        tempfile.TemporaryDirectory(prefix="maintkit-fuzz-") as folder,
        pytest.MonkeyPatch.context() as patch,
    ):
        work = Path(folder)
        for name, content in (("pb.yml", playbook_text), ("inv.yml", inventory_text)):
            data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
            (work / name).write_bytes(data)
        patch.chdir(work)
        patch.setenv("COLUMNS", "400")
        commands: list[str] = []

        def would_run(*args: Any, **kwargs: Any) -> None:
            raise WouldRun

        def command(*args: Any, **kwargs: Any) -> None:
            commands.append(str(args[1:2]))
            raise AssertionError("a command ran")

        from maintkit.engine import runner
        from maintkit.transport import local

        patch.setattr(runner.Runner, "__init__", would_run)
        patch.setattr(local.LocalTransport, "run", command)
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["run", "pb.yml", "-i", "inv.yml", "--journal-dir", "journal"])
        elapsed = time.monotonic() - started
        output = result.output
        assert elapsed < SECONDS_PER_EXAMPLE, f"took {elapsed:.1f} s"
        assert commands == []
        assert "Traceback" not in output, output
        if isinstance(result.exception, WouldRun):
            return  # valid: the run would have started
        trace = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        assert result.exit_code == 2, f"exit {result.exit_code}: {trace}\n{output}"
        errors = list(ERROR.finditer(output))
        assert errors, output
        for match in errors:
            assert match["line"] is not None or match["file"] == "command line", output
        assert not (work / "journal").exists()


def _inventory() -> str:
    return DEMO_INVENTORY.replace("connection: local", "connection: local\n      lock_dir: ./lock")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("name", "path"), PLAYBOOKS, ids=[name for name, _ in PLAYBOOKS])
def test_mutated_shipped_playbooks_give_a_clean_result_or_exit_2(name: str, path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    @FUZZ
    @given(mutated(data))
    def fuzz(book: Any) -> None:
        check(yaml.safe_dump(book, allow_unicode=True), _inventory())

    fuzz()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("name", "path"), PLAYBOOKS[:4], ids=[name for name, _ in PLAYBOOKS[:4]])
def test_playbook_text_edits_give_a_clean_result_or_exit_2(name: str, path: Path) -> None:
    @FUZZ
    @given(text_edits(path.read_text(encoding="utf-8")))
    def fuzz(text: str) -> None:
        check(text, _inventory())

    fuzz()


@pytest.mark.timeout(600)
def test_mutated_example_inventories_give_a_clean_result_or_exit_2() -> None:
    data = yaml.safe_load(_inventory())
    book = (ROOT / "playbooks" / "demo.yml").read_text(encoding="utf-8")

    @settings(FUZZ, max_examples=EXAMPLES * 3)
    @given(
        st.one_of(
            mutated(data).map(lambda d: yaml.safe_dump(d, allow_unicode=True)), text_edits(_inventory())
        )
    )
    def fuzz(inventory: str) -> None:
        check(book, inventory)

    fuzz()


@pytest.mark.timeout(600)
def test_random_bytes_give_exit_2() -> None:
    @settings(FUZZ, max_examples=EXAMPLES * 2)
    @given(st.binary(max_size=200))
    def fuzz(data: bytes) -> None:
        check(data, _inventory())

    fuzz()
