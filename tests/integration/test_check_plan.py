"""``--check`` reads like a plan: a generated script shown once as a script (not a ``$`` on each of
its lines), the retention policy in words (no Python repr), and a step that needs an earlier step's
result says which step, not a template error. The CLI in a subprocess against the real sshd hosts'
inventory; a plan contacts none of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import run_cli, write_playbook

pytestmark = pytest.mark.integration


def test_a_plan_shows_scripts_as_scripts_and_retention_in_words(tmp_path: Path, ssh_inventory: Path) -> None:
    data = yaml.safe_load(ssh_inventory.read_text())
    data["all"]["vars"].update(
        database={"name": "shop", "user": "shop", "host": "127.0.0.1"},
        files={"root": "~/shop", "cms": "magento"},
        storage={"name": "local", "type": "local", "path": str(tmp_path / "backups")},
        retention={"keep_daily": 7, "keep_weekly": 4},
    )
    inventory = tmp_path / "production.yml"
    inventory.write_text(yaml.safe_dump(data))

    result = run_cli("run", "nightly-backup", "-i", inventory, "--limit", "prod1", "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "    $ bash script:" in lines
    assert not [line for line in lines if line.strip() in {"$ exit 0", "$ MAINTKIT_BASH", '$ )"'}]
    assert any(line.startswith("        tar -C ") for line in lines)  # the script's body, as a block
    assert "keeping keep_daily 7, keep_weekly 4; the newest verified one is never pruned" in result.stdout
    assert "RetentionPolicy(" not in result.stdout
    assert "    · (control node) stream, hash and write each artifact to: local folder " in result.stdout
    assert not (tmp_path / "backups").exists()  # nothing ran


def test_a_step_needing_an_earlier_result_names_that_step(tmp_path: Path, ssh_inventory: Path) -> None:
    book = {
        "name": "release",
        "hosts": "prod1",
        "steps": [
            {"name": "find the release", "shell": "echo 2.4.7", "register": "found"},
            {"name": "use it", "shell": "echo {{ found.data.release }} {{ found.stdout }}"},
            {"name": "only for it", "shell": "true", "when": "found.data.flag"},
        ],
    }
    path = write_playbook(tmp_path, book)
    result = run_cli("run", path, "-i", ssh_inventory, "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    said = "(depends on the result of step 'find the release' (found): known only when the run gets there)"
    assert result.stdout.count(said) == 2, result.stdout
    assert "dict object" not in result.stdout and "has no attribute" not in result.stdout
    assert "    $ echo 2.4.7" in result.stdout


def test_diff_is_refused_with_the_reason_and_what_to_use(tmp_path: Path, ssh_inventory: Path) -> None:
    book = write_playbook(tmp_path, {"name": "touch", "steps": [{"shell": "touch ~/diffed"}]})
    result = run_cli("run", book, "-i", ssh_inventory, "--diff", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--diff is not supported: maintkit changes hosts through commands" in result.stderr
    assert "Use --check to see every command each host would run" in result.stderr
    assert result.stdout == ""  # refused while parsing: nothing loaded, nothing ran
