"""The bad-input corpus: every case gives exit 2, an error at its file and line, no traceback, and
zero commands on any host (tests/corpus/harness.py). The cases are data (``*.yml`` here) plus a few
generated ones too big or too binary to write by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.corpus.harness import Case, check_case, corpus_folder

DEEP = 200  # levels: past maintkit's limit (64), far below the C stack's


def _generated() -> list[Case]:
    flow = "[" * DEEP + "]" * DEEP
    block = "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(DEEP)) + f"{'  ' * (DEEP + 1)}v\n"
    parens = "(" * DEEP + "1" + ")" * DEEP
    steps = "steps:\n  - shell: ls\n"
    return [
        Case(
            "deep-flow-list-in-vars",
            "pb.yml:3",
            "nested deeper than",
            f"name: t\nvars:\n  v: {flow}\n{steps}",
        ),
        Case("deep-block-mapping", "pb.yml:", "nested deeper than", f"name: t\nvars:\n{block}{steps}"),
        Case(
            "deep-inventory",
            "inv.yml:3",
            "nested deeper than",
            inventory=f"all:\n  vars:\n    v: {flow}\n  hosts:\n    shop: {{connection: local}}\n",
        ),
        Case("deep-vars-file", "vars.yml:1", "nested deeper than", vars_file=f"v: {flow}\n"),
        Case(
            "deeply-nested-expression",
            "pb.yml:3",
            "template",
            f'name: t\nsteps:\n  - shell: "echo {{{{ {parens} }}}}"\n',
        ),
        Case("very-long-key", "pb.yml:2", "YAML syntax error", "name: t\n" + "k" * 5000 + ": 1\n" + steps),
        Case("binary-garbage", "pb.yml:1:1", "is not UTF-8", "\xff\xfe\x00\x01garbage", encoding="latin-1"),
    ]


def _load() -> list[Case]:
    cases = []
    for path in sorted(corpus_folder().glob("*.yml")):
        cases += [Case.from_dict(item) for item in yaml.safe_load(path.read_text(encoding="utf-8"))]
    return cases + _generated()


CASES = _load()


def test_the_corpus_has_at_least_150_distinct_cases() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(ids) >= 150


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_at_its_line_with_nothing_run(case: Case, tmp_path: Path, monkeypatch) -> None:
    check_case(case, tmp_path, monkeypatch)
