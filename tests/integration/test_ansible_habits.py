"""Step keys and options as an Ansible user writes them, through the real CLI in a subprocess."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import events, run_cli, write_playbook

pytestmark = pytest.mark.integration


def local_inventory(folder: Path) -> Path:
    path = folder / "inv.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"shop": {"connection": "local"}}}}))
    return path


def run_book(folder: Path, book: dict[str, Any], *args: str) -> tuple[int, str]:
    result = run_cli(
        "run", write_playbook(folder, book), "-i", local_inventory(folder),
        "--journal-dir", folder / "j", *args, cwd=folder,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_delay_is_retry_delay_as_ansible_spells_it(tmp_path: Path) -> None:
    flag = tmp_path / "tried"
    step = {
        "name": "flaky",
        "shell": f"[ -e {flag} ] || {{ touch {flag}; exit 1; }}",
        "retries": 2,
        "delay": 1.5,
    }
    started = time.monotonic()
    code, output = run_book(tmp_path, {"name": "retry", "steps": [step]})
    assert code == 0, output
    assert time.monotonic() - started >= 1.5  # the one retry waited the delay
    end = next(e for e in events(tmp_path / "j") if e["event"] == "step_end")
    assert end["status"] in ("ok", "changed") and end["attempts"] == 2


def test_delay_with_a_wrong_value_is_reported_under_its_own_name(tmp_path: Path) -> None:
    code, output = run_book(
        tmp_path, {"name": "x", "steps": [{"shell": "true", "retries": 1, "delay": "soon"}]}
    )
    assert code == 2
    assert "steps[0].delay: 'delay' must be a number of seconds, 0 or more, not 'soon'" in output


def test_delay_and_retry_delay_together_are_refused(tmp_path: Path) -> None:
    step = {"shell": "true", "retries": 1, "delay": 1, "retry_delay": 2}
    code, output = run_book(tmp_path, {"name": "x", "steps": [step]})
    assert code == 2
    assert "'delay' is 'retry_delay' as Ansible spells it; give one of them" in output
