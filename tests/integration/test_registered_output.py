"""A registered command's ``stdout``/``stderr`` as Ansible's command module gives them (real sshd host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import events, run_cli, write_playbook

pytestmark = pytest.mark.integration


def test_registered_stdout_and_stderr_lose_trailing_newlines_and_lines_stay(
    tmp_path: Path, ssh_inventory: Path, ssh_hosts, clean_homes
) -> None:
    book = {
        "name": "compare",
        "steps": [
            {"shell": "echo ok; printf 'warn\\n\\n' >&2", "register": "r"},
            {"name": "equal", "shell": "touch equal", "when": "r.stdout == 'ok' and r.stderr == 'warn'"},
            {"shell": "printf %s {{ r.stdout_lines | length }} > lines"},
            {"shell": "printf 'a\\nb\\n'", "register": "two"},
            {"shell": "printf %s {{ (two.stdout ~ '|' ~ (two.stdout_lines | join(','))) | quote }} > two"},
        ],
    }
    result = run_cli(
        "run", write_playbook(tmp_path, book), "-i", ssh_inventory, "-l", "stage1",
        "--journal-dir", tmp_path / "j", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    home = Path(ssh_hosts["stage1"].home)
    assert (home / "equal").exists()  # the comparison an Ansible user writes holds
    assert (home / "lines").read_text() == "1"
    assert (home / "two").read_text() == "a\nb|a,b"  # inner newlines kept, the trailing one gone
    journal = events(tmp_path / "j")
    first = next(e for e in journal if e["event"] == "step_end")
    assert first["stdout"] == "ok\n"  # the journal records the output as it came
