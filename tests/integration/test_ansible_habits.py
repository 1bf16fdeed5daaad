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


def test_list_hosts_prints_the_targeted_hosts_and_connects_nowhere(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    unreachable = {"ansible_host": "127.0.0.1", "ansible_port": 1}
    groups = {
        "web": {"hosts": {"web1": unreachable, "web2": unreachable}},
        "db": {"hosts": {"db1": unreachable}},
    }
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
    book = write_playbook(tmp_path, {"name": "touch", "steps": [{"shell": "touch x"}]})
    result = run_cli(
        "run",
        book,
        "-i",
        inventory,
        "--limit",
        "web",
        "--list-hosts",
        "--journal-dir",
        tmp_path / "j",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[1:] == ["  hosts (2):", "    web1", "    web2"]
    assert result.stdout.startswith("playbook: touch (")
    assert not (tmp_path / "j").exists()  # no run, no journal


def test_forks_caps_how_many_hosts_run_at_once(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    hosts = {f"h{n}": {"connection": "local"} for n in range(3)}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    busy = tmp_path / "busy"
    # two hosts inside this step at once would find the folder there and fail
    book = {"name": "one at a time", "steps": [{"shell": f"mkdir {busy} && sleep 0.4 && rmdir {busy}"}]}
    path = write_playbook(tmp_path, book)
    one = run_cli("run", path, "-i", inventory, "-f", "1", "--journal-dir", tmp_path / "j1", cwd=tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    together = run_cli("run", path, "-i", inventory, "--journal-dir", tmp_path / "j2", cwd=tmp_path)
    assert together.returncode == 1  # without -f the playbook's max_parallel (10) runs them together


def test_forks_must_be_at_least_one(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, {"name": "x", "steps": [{"shell": "true"}]}, "--forks", "0")
    assert code == 2 and "--forks" in output


def test_user_is_the_ssh_user_of_hosts_whose_inventory_names_none(
    tmp_path: Path, ssh_hosts, known_hosts_file: Path, clean_homes
) -> None:
    from tests.integration.conftest import inventory_data

    data = inventory_data(ssh_hosts, known_hosts_file)
    stage1 = data["all"]["children"]["staging"]["hosts"]["stage1"]
    del stage1["ansible_user"]
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump(data))
    book = write_playbook(tmp_path, {"name": "who", "steps": [{"shell": "whoami > who"}]})
    result = run_cli(
        "run", book, "-i", inventory, "-l", "stage1,prod1", "-u", ssh_hosts["stage1"].user,
        "--journal-dir", tmp_path / "j", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (Path(ssh_hosts["stage1"].home) / "who").read_text().strip() == ssh_hosts["stage1"].user
    # prod1's inventory names its user: that one wins over -u, as in Ansible
    assert (Path(ssh_hosts["prod1"].home) / "who").read_text().strip() == ssh_hosts["prod1"].user


def tagged_book(folder: Path) -> dict[str, Any]:
    def mark(name: str, **keys: Any) -> dict[str, Any]:
        return {"name": name, "shell": f"touch {folder / name}", **keys}

    return {
        "name": "tagged",
        "steps": [
            mark("db", tags=["db", "backup"]),
            mark("files", tags="files"),
            mark("untagged"),
            mark("report", tags="always"),
            mark("debug", tags="never,debug"),
        ],
    }


def ran(folder: Path) -> set[str]:
    return {n for n in ("db", "files", "untagged", "report", "debug") if (folder / n).exists()}


def test_tags_run_only_the_tagged_steps_and_always_and_record_the_others_as_skipped(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, tagged_book(tmp_path), "--tags", "backup")
    assert code == 0, output
    assert ran(tmp_path) == {"db", "report"}
    skipped = {e["step"]: e["msg"] for e in events(tmp_path / "j") if e.get("status") == "skipped"}
    assert skipped["files"] == "not selected by --tags backup"
    assert skipped["debug"].startswith("tagged never")


def test_skip_tags_leave_out_the_tagged_steps(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, tagged_book(tmp_path), "--skip-tags", "db,always")
    assert code == 0, output
    assert ran(tmp_path) == {"files", "untagged"}  # never-tagged debug stays out without --tags


def test_a_never_step_runs_when_tags_name_it(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, tagged_book(tmp_path), "-t", "debug")
    assert code == 0, output
    assert ran(tmp_path) == {"debug", "report"}


def test_a_tag_no_step_has_is_an_error_and_nothing_runs(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, tagged_book(tmp_path), "--tags", "bakcup")
    assert code == 2
    assert "--tags: no step of playbook 'tagged' is tagged 'bakcup' (its tags: always, backup, db," in output
    assert ran(tmp_path) == set()


def test_tags_on_rollback_steps_are_refused(tmp_path: Path) -> None:
    book = {"name": "x", "steps": [{"shell": "true"}], "rollback": [{"shell": "true", "tags": "db"}]}
    code, output = run_book(tmp_path, book)
    assert code == 2
    assert "rollback[0].tags: tags select among 'steps'; 'rollback' steps always run as written" in output


def test_tags_must_be_names(tmp_path: Path) -> None:
    code, output = run_book(tmp_path, {"name": "x", "steps": [{"shell": "true", "tags": 5}]})
    assert code == 2
    assert "steps[0].tags: 'tags' must be a tag name or a list of tag names, not 5" in output


def run_with_host_vars(folder: Path, **host_vars: Any) -> tuple[int, str, str]:
    inventory = folder / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"shop": {"connection": "local", **host_vars}}}}))
    book = write_playbook(folder, {"name": "touch", "steps": [{"shell": f"touch {folder / 'ran'}"}]})
    result = run_cli("run", book, "-i", inventory, "--journal-dir", folder / "j", cwd=folder)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("ansible_become_flags", "-E", "maintkit becomes another user only through 'sudo -u USER'"),
        ("become_method", "su", "must be 'sudo' (the only become method maintkit supports)"),
        (
            "ansible_ssh_common_args",
            "-o ControlMaster=auto",
            "maintkit takes only ProxyJump from these arguments",
        ),
        ("ansible_ssh_pass", "hunter2-secret-value", "no password logins"),
        (
            "ansible_shell_type",
            "csh",
            "is an Ansible setting maintkit does not support; it honours ansible_host",
        ),
    ],
)
def test_connection_settings_maintkit_does_not_honour_are_refused_at_their_line(
    tmp_path: Path, setting: str, value: Any, says: str
) -> None:
    code, stdout, stderr = run_with_host_vars(tmp_path, **{setting: value})
    assert code == 2
    assert "inv.yml:" in stderr and f"all.hosts.shop.{setting}: '{setting}'" in stderr and says in stderr
    assert "hunter2-secret-value" not in stdout + stderr
    assert not (tmp_path / "ran").exists()


def test_become_false_says_what_maintkit_does_and_is_accepted(tmp_path: Path) -> None:
    code, stdout, stderr = run_with_host_vars(tmp_path, ansible_become=False)
    assert code == 0, stdout + stderr
    assert (tmp_path / "ran").exists()


def test_python_interpreter_is_ignored_with_a_note(tmp_path: Path) -> None:
    code, stdout, stderr = run_with_host_vars(tmp_path, ansible_python_interpreter="/usr/bin/python3")
    assert code == 0, stdout + stderr
    assert "warning: inv.yml:" in stderr
    assert "'ansible_python_interpreter' is ignored: maintkit runs no Python on the hosts" in stderr
    assert (tmp_path / "ran").exists()
