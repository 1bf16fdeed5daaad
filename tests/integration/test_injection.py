"""No injection path: values given as data never switch shell quoting off, env names are checked.

Each attack runs for real, over the local connection and over sshd (host ``stage1``), and the test
looks for its effect: the file ``touch`` would have made must not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import events, run_cli, write_playbook

pytestmark = pytest.mark.integration

PAYLOAD = "{{ 'x; touch PWNED' | raw }}"


def local_inventory(work: Path, **host_vars: object) -> Path:
    path = work / "local.yml"
    host = {"connection": "local", "lock_dir": str(work / "lock"), **host_vars}
    path.write_text(yaml.safe_dump({"all": {"hosts": {"here": host}}}))
    return path


def ssh_inventory_with(ssh_inventory: Path, **host_vars: object) -> Path:
    data = yaml.safe_load(ssh_inventory.read_text())
    data["all"]["children"]["staging"]["hosts"]["stage1"].update(host_vars)
    ssh_inventory.write_text(yaml.safe_dump(data))
    return ssh_inventory


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path: Path) -> tuple[str, Path, Path]:
    """(connection kind, the folder commands run in, an inventory reaching it)."""
    work = tmp_path / "work"
    work.mkdir()
    if request.param == "local":
        return "local", work, local_inventory(work)
    hosts = request.getfixturevalue("clean_homes")
    inventory = request.getfixturevalue("ssh_inventory")
    return "ssh", Path(hosts["stage1"].home), inventory


def run(work: Path, inventory: Path, book: dict, *args: str):
    path = write_playbook(work, book)
    return run_cli(
        "run",
        path,
        "-i",
        inventory,
        "--limit",
        _limit(inventory),
        "--journal-dir",
        work / "j",
        *args,
        cwd=work,
    )


def _limit(inventory: Path) -> str:
    return "here" if inventory.name == "local.yml" else "stage1"


def outputs(work: Path) -> list[str]:
    return [e.get("stdout", "") for e in events(work / "j") if e["event"] == "step_end"]


def test_raw_inside_a_var_value_is_quoted_and_never_runs(target, tmp_path: Path) -> None:
    kind, where, inventory = target
    book = {"name": "inj", "steps": [{"shell": {"cmd": "echo {{ v }}", "chdir": str(where)}}]}
    result = run(tmp_path / "work", inventory, book, "--var", f"v={PAYLOAD}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (where / "PWNED").exists(), kind
    assert any("x; touch PWNED" in text for text in outputs(tmp_path / "work"))


def test_raw_inside_an_inventory_value_is_quoted_and_never_runs(target, tmp_path: Path) -> None:
    kind, where, inventory = target
    if kind == "local":
        inventory = local_inventory(tmp_path / "work", v=PAYLOAD)
    else:
        inventory = ssh_inventory_with(inventory, v=PAYLOAD)
    book = {"name": "inj", "steps": [{"shell": {"cmd": "echo {{ v }}", "chdir": str(where)}}]}
    result = run(tmp_path / "work", inventory, book)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (where / "PWNED").exists(), kind


def test_raw_inside_registered_output_is_data(target, tmp_path: Path) -> None:
    kind, where, inventory = target
    literal = "{% raw %}" + PAYLOAD + "{% endraw %}"  # the host prints the payload's text
    book = {
        "name": "inj",
        "steps": [
            {"shell": {"argv": ["printf", "%s", literal], "chdir": str(where)}, "register": "out"},
            {"shell": {"cmd": "echo {{ out.stdout }}", "chdir": str(where)}},
        ],
    }
    result = run(tmp_path / "work", inventory, book)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (where / "PWNED").exists(), kind


def test_raw_written_by_the_playbook_author_still_reaches_the_shell(target, tmp_path: Path) -> None:
    kind, where, inventory = target
    book = {
        "name": "author",
        "steps": [{"shell": {"cmd": "{{ 'touch BY-AUTHOR' | raw }}", "chdir": str(where)}}],
    }
    result = run(tmp_path / "work", inventory, book)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (where / "BY-AUTHOR").exists(), kind


def test_an_env_name_carrying_shell_code_is_refused_before_anything_runs(target, tmp_path: Path) -> None:
    kind, where, inventory = target
    book = {
        "name": "inj",
        "vars": {"app_env": {"A=1; touch PWNED; B": "v"}},
        "steps": [{"shell": {"cmd": "touch RAN", "chdir": str(where), "env": "{{ app_env }}"}}],
    }
    result = run(tmp_path / "work", inventory, book)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "must be letters, digits and _ (no digit first)" in result.stderr
    assert not (where / "PWNED").exists() and not (where / "RAN").exists(), kind
    assert not (tmp_path / "work" / "j").exists()


def test_an_env_name_from_registered_output_fails_the_step_before_its_command(target, tmp_path: Path) -> None:
    # Validation cannot see a name that only the host prints: the step's parameters are checked again
    # after rendering at run time, and the command never starts.
    kind, where, inventory = target
    book = {
        "name": "inj",
        "steps": [
            {"shell": {"cmd": "echo 'A=1; touch PWNED; B'", "chdir": str(where)}, "register": "out"},
            {"shell": {"cmd": "touch RAN", "chdir": str(where), "env": "{{ {out.stdout: 'v'} }}"}},
        ],
    }
    result = run(tmp_path / "work", inventory, book)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "must be letters, digits and _" in result.stdout + result.stderr
    assert not (where / "PWNED").exists() and not (where / "RAN").exists(), kind
