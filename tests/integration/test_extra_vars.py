"""``-e/--extra-vars`` as an Ansible user types it, through the real CLI in a subprocess.

``-e`` used to be ``--env``: ``maintkit run x -e release=2.4.7`` ran against an environment named
"release=2.4.7" (its storage keys, its lock). Now ``-e`` is Ansible's and ``--env`` never takes K=V.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import events, run_cli, write_playbook

pytestmark = pytest.mark.integration

#: writes ``release`` and the type of ``count`` into files on the host, quoted as every value is
BOOK = {
    "name": "show",
    "steps": [
        {"name": "release", "shell": "printf %s {{ release | quote }} > {{ out | quote }}/release"},
        {
            "name": "count",
            "shell": "printf %s {{ ('number' if count is number else 'string') | quote }}"
            " > {{ out | quote }}/count",
        },
    ],
}


def local_inventory(folder: Path) -> Path:
    path = folder / "inv.yml"
    inventory = {
        "all": {"vars": {"out": str(folder), "count": 0}, "hosts": {"shop": {"connection": "local"}}}
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_show(folder: Path, *args: str) -> tuple[int, str]:
    book = write_playbook(folder, BOOK)
    result = run_cli(
        "run", book, "-i", local_inventory(folder), "--journal-dir", folder / "j", *args, cwd=folder
    )
    return result.returncode, result.stdout + result.stderr


def test_e_key_value_sets_a_variable_as_ansible_does(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", "release=2.4.7", "--extra-vars", "count=41")
    assert code == 0, output
    assert (tmp_path / "release").read_text() == "2.4.7"
    assert (tmp_path / "count").read_text() == "string"  # K=V values stay strings, as in Ansible
    assert events(tmp_path / "j")[0]["env"] != "release=2.4.7"


def test_e_several_pairs_in_one_value_are_split_as_a_shell_would(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", "release='2.4.7 hotfix' count=1")
    assert code == 0, output
    assert (tmp_path / "release").read_text() == "2.4.7 hotfix"


def test_e_json_mapping_keeps_its_types(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", json.dumps({"release": "r1", "count": 41}))
    assert code == 0, output
    assert (tmp_path / "count").read_text() == "number"


def test_e_at_file_reads_a_yaml_vars_file(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text("release: from-file\ncount: 9\n")
    code, output = run_show(tmp_path, "-e", "@vars.yml")
    assert code == 0, output
    assert (tmp_path / "release").read_text() == "from-file"
    assert (tmp_path / "count").read_text() == "number"


def test_the_last_e_wins_and_var_wins_over_e(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", "release=first", "-e", "release=second")
    assert code == 0, output
    assert (tmp_path / "release").read_text() == "second"
    code, output = run_show(tmp_path, "--var", "release=var", "-e", "release=extra")
    assert code == 0, output
    assert (tmp_path / "release").read_text() == "var"


def test_a_malformed_e_is_reported_by_number_without_its_text(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", "release=ok", "-e", "api_token:hunter2-secret-value")
    assert code == 2
    assert "-e/--extra-vars" in output and "number 2 is not K=V" in output
    assert "hunter2-secret-value" not in output
    assert not (tmp_path / "release").exists()  # nothing ran


def test_an_inline_mapping_that_is_not_json_or_yaml_is_an_error(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", '{"release": ')
    assert code == 2
    assert "number 1 is not valid JSON or YAML" in output


def test_a_builtin_name_cannot_be_set_with_e(tmp_path: Path) -> None:
    code, output = run_show(tmp_path, "-e", "release=r run_id=mine")
    assert code == 2
    assert "'run_id' is set by maintkit" in output


def test_env_never_takes_a_key_value_as_an_environment_name(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "release=2.4.7.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {"shop": {"connection": "local"}}}})
    )
    book = write_playbook(tmp_path, BOOK)
    result = run_cli("run", book, "--env", "release=2.4.7", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert result.returncode == 2
    assert "not an environment name; extra variables are -e/--extra-vars K=V" in result.stderr
    assert not (tmp_path / "j").exists() or not list((tmp_path / "j").glob("*.jsonl"))


def test_e_no_longer_means_env_on_commands_without_variables(tmp_path: Path) -> None:
    result = run_cli("snapshots", "list", "-e", "production", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such option '-e'" in result.stderr


def test_e_reaches_a_real_ssh_host(tmp_path: Path, ssh_inventory: Path, ssh_hosts, clean_homes) -> None:
    book = write_playbook(
        tmp_path, {"name": "mark", "steps": [{"shell": "printf %s {{ release | quote }} > r"}]}
    )
    result = run_cli(
        "run",
        book,
        "-i",
        ssh_inventory,
        "-l",
        "stage1",
        "-e",
        "release=2.4.7",
        "--journal-dir",
        tmp_path / "j",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (Path(ssh_hosts["stage1"].home) / "r").read_text() == "2.4.7"
