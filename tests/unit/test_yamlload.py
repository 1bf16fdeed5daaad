"""YAML with positions: every key and item knows its line and column; syntax errors are located."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from maintkit.model.problems import InvalidInput
from maintkit.text.yamlload import PosDict, PosList, key_path, load_yaml, locate, parse_yaml


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_yaml(textwrap.dedent(text), "f.yml")
    return [str(p) for p in caught.value.problems]


def test_keys_and_items_remember_their_positions() -> None:
    data = parse_yaml("a: 1\nsteps:\n  - shell: ls\n  - http:\n      url: x\n", "f.yml")
    assert isinstance(data, PosDict)
    assert isinstance(data["steps"], PosList)
    assert data.positions == {"a": (1, 1), "steps": (2, 1)}
    assert data["steps"].positions == [(3, 5), (4, 5)]
    assert data["steps"][1]["http"].positions == {"url": (5, 7)}


def test_locate_returns_the_deepest_known_position() -> None:
    data = parse_yaml("steps:\n  - shell: ls\n", "f.yml")
    assert locate(data, ("steps", 0, "shell")) == (2, 5)
    # "cmd" exists only after normalizing the shorthand: the nearest written ancestor is used
    assert locate(data, ("steps", 0, "shell", "cmd")) == (2, 5)
    assert locate(data, ("nothing",)) == (1, 1)


def test_key_path_reads_like_the_yaml() -> None:
    assert key_path(("steps", 2, "shell", "cmd")) == "steps[2].shell.cmd"


def test_syntax_error_is_located() -> None:
    assert problems_of("a: b: c\n") == [
        "f.yml:1:5: YAML syntax error: mapping values are not allowed in this context"
    ]


def test_unclosed_flow_sequence_is_located_with_context() -> None:
    (message,) = problems_of("name: x\nhosts: [web\n")
    assert message.startswith("f.yml:3:1: YAML syntax error: did not find expected ',' or ']'")
    assert "line 2" in message


def test_tab_indentation_says_so() -> None:
    (message,) = problems_of("steps:\n  - shell: ls\n\tregister: r\n")
    assert message == (
        "f.yml:3:1: YAML syntax error: a tab character where YAML needs spaces: "
        "indent with spaces, never tabs"
    )


def test_duplicate_keys_are_errors_all_reported_with_paths() -> None:
    text = """\
        name: one
        steps:
          - shell: ls
            register: r
            register: s
        name: two
        """
    assert problems_of(text) == [
        "f.yml:5:5: steps[0].register: duplicate key 'register' (first written at line 4; "
        "YAML would keep only the last)",
        "f.yml:6:1: name: duplicate key 'name' (first written at line 1; YAML would keep only the last)",
    ]


def test_merge_keys_may_be_overridden() -> None:
    data = parse_yaml("base: &b {port: 22, user: a}\nhost:\n  <<: *b\n  port: 2222\n", "f.yml")
    assert data["host"] == {"port": 2222, "user": "a"}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_a_clear_problem(text: str) -> None:
    assert problems_of(text) == ["f.yml:1: the file is empty"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_yaml(tmp_path / "nope.yml", "nope.yml")
    assert str(caught.value) == "nope.yml: file not found"


# -- bounds: alias bombs, loops, depth, bytes YAML or UTF-8 refuse ----------------------------------


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_fast_at_its_line() -> None:
    import time

    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        parse_yaml(_bomb(9), "bomb.yml")  # 10**9 values once expanded
    assert time.monotonic() - started < 1.0
    (problem,) = caught.value.problems
    assert problem.line == 5 and "aliases expand to more than" in problem.message


def test_a_few_aliases_are_fine() -> None:
    data = parse_yaml(_bomb(3), "ok.yml")
    assert len(data["a2"]) == 10 and data["a2"][0] is data["a1"]


def test_an_alias_that_contains_itself_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_yaml("top:\n  a: &a [1, *a]\n", "loop.yml")
    assert caught.value.problems[0].line == 2
    assert "an alias refers to a node that contains it" in caught.value.problems[0].message


def test_nesting_past_the_limit_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_yaml("v: " + "[" * 500 + "]" * 500 + "\n", "deep.yml")
    assert caught.value.problems[0].line == 1
    assert "nested deeper than 64 levels" in caught.value.problems[0].message


def test_a_nul_byte_is_located(tmp_path) -> None:
    path = tmp_path / "nul.yml"
    path.write_bytes(b'a: 1\nb: "x\x00"\n')
    with pytest.raises(InvalidInput) as caught:
        load_yaml(path, "nul.yml")
    assert str(caught.value.problems[0]) == "nul.yml:2:6: a character YAML does not allow (NUL)"


def test_a_latin_1_byte_is_located(tmp_path) -> None:
    path = tmp_path / "latin.yml"
    path.write_bytes("a: 1\nname: José\n".encode("latin-1"))
    with pytest.raises(InvalidInput) as caught:
        load_yaml(path, "latin.yml")
    assert str(caught.value.problems[0]) == "latin.yml:2:10: byte 0xe9 is not UTF-8: save the file as UTF-8"


def test_a_file_parsed_ahead_gives_each_reader_its_own_equal_copy_and_a_changed_one_is_parsed_again(
    tmp_path,
) -> None:
    """The fleet's fork server parses the shared inventory once (:func:`parse_ahead`); each site's
    run must get exactly what parsing gives (values and positions), a copy of its own, and a file
    changed since must be parsed anew, not served from before."""
    from maintkit.text import yamlload

    path = tmp_path / "production.yml"
    path.write_text("all:\n  hosts:\n    web1: {host: 10.0.0.1}\n    web2: {host: 10.0.0.2}\n")
    yamlload.parse_ahead([path, tmp_path / "missing.yml"])
    try:
        first, second = yamlload.load_yaml(path), yamlload.load_yaml(path)
        yamlload._PARSED_AHEAD.clear()
        reference = yamlload.load_yaml(path)
        assert first == reference and first is not second
        assert first["all"]["hosts"].positions == reference["all"]["hosts"].positions == {
            "web1": (3, 5),
            "web2": (4, 5),
        }
        assert first["all"]["hosts"]["web2"].start == reference["all"]["hosts"]["web2"].start
        first["all"]["hosts"]["web1"]["host"] = "changed"  # one run's copy is its own
        yamlload.parse_ahead([path])
        assert yamlload.load_yaml(path)["all"]["hosts"]["web1"]["host"] == "10.0.0.1"
        path.write_text("all:\n  hosts:\n    web3: {host: 10.0.0.3}\n")
        assert list(yamlload.load_yaml(path)["all"]["hosts"]) == ["web3"]
    finally:
        yamlload._PARSED_AHEAD.clear()
