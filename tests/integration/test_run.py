"""End to end: real playbooks through the real CLI against real sshd hosts; effects checked on the hosts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import events, run_cli, start_cli, step_statuses, wait_for, write_playbook

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every test user can write to (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="maintkit-shared-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def work(tmp_path: Path, clean_homes) -> Path:
    """A working folder with a journal folder; the test hosts' homes are emptied first."""
    (tmp_path / "journal").mkdir()
    return tmp_path


def run_book(work: Path, inventory: Path, book: dict, *args: str) -> subprocess.CompletedProcess[str]:
    path = write_playbook(work, book)
    return run_cli("run", path, "-i", inventory, "--journal-dir", work / "journal", *args, cwd=work)


def home(ssh_hosts, name: str) -> Path:
    return Path(ssh_hosts[name].home)


def test_steps_run_on_every_host_and_leave_their_effects(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "touch",
        "steps": [
            {"name": "write", "shell": "echo {{ inventory_hostname }} > marker.txt"},
            {"name": "append", "shell": {"cmd": "echo second >> marker.txt"}},
        ],
    }
    result = run_book(work, ssh_inventory, book)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("stage1", "prod1", "prod2"):
        assert (home(ssh_hosts, name) / "marker.txt").read_text() == f"{name}\nsecond\n"
    journal = events(work / "journal")
    assert journal[0]["event"] == "run_start" and journal[-1]["event"] == "run_end"
    assert journal[-1]["exit_code"] == 0


def test_hosts_of_a_batch_run_in_parallel(work, ssh_inventory, ssh_hosts, shared_dir):
    # Each host waits until all three have arrived: only possible when they run at the same time.
    barrier = shared_dir
    book = {
        "name": "barrier",
        "vars": {"barrier": str(barrier)},
        "steps": [
            {
                "name": "meet",
                "shell": "touch {{ barrier }}/{{ inventory_hostname }}; i=0; "
                "while [ $(ls {{ barrier }} | wc -l) -lt 3 ]; do i=$((i+1)); "
                "[ $i -gt 200 ] && exit 1; sleep 0.05; done",
            }
        ],
    }
    result = run_book(work, ssh_inventory, book)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(os.listdir(barrier)) == ["prod1", "prod2", "stage1"]


def test_a_failing_batch_stops_the_batches_after_it(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "serial",
        "hosts": "production",
        "serial": 1,
        "steps": [
            {"name": "mark", "shell": "touch started"},
            {"name": "fail on prod1", "shell": "test {{ inventory_hostname }} != prod1"},
        ],
    }
    result = run_book(work, ssh_inventory, book)
    assert result.returncode == 1
    assert (home(ssh_hosts, "prod1") / "started").exists()
    assert not (home(ssh_hosts, "prod2") / "started").exists()
    assert not (home(ssh_hosts, "stage1") / "started").exists()
    end = events(work / "journal")[-1]
    assert end["hosts"] == {"prod1": "failed", "prod2": "not_run"}


def test_a_command_failing_twice_then_succeeding_is_retried(work, ssh_inventory, ssh_hosts):
    flaky = "n=$(cat counter 2>/dev/null || echo 0); n=$((n+1)); echo $n > counter; test $n -ge 3"
    book = {"name": "retry", "steps": [{"name": "flaky", "shell": flaky, "retries": 3, "retry_delay": 0.05}]}
    result = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home(ssh_hosts, "stage1") / "counter").read_text().strip() == "3"
    retries = [e for e in events(work / "journal") if e["event"] == "retry"]
    assert len(retries) == 2


def test_a_failing_command_is_not_retried_without_retries(work, ssh_inventory, ssh_hosts):
    flaky = "n=$(cat counter 2>/dev/null || echo 0); echo $((n+1)) > counter; false"
    result = run_book(work, ssh_inventory, {"name": "once", "steps": [{"shell": flaky}]}, "--limit", "stage1")
    assert result.returncode == 1
    assert (home(ssh_hosts, "stage1") / "counter").read_text().strip() == "1"


def remote_sleepers(ssh_hosts, name: str, pattern: str) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-u", ssh_hosts[name].user, "-f", pattern], capture_output=True, text=True
    )
    return found.stdout.split()


def test_a_timeout_kills_the_remote_command(work, ssh_inventory, ssh_hosts):
    book = {"name": "slow", "steps": [{"name": "hang", "shell": "sleep 617", "timeout": 1}]}
    result = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert result.returncode == 1
    assert "timed out" in result.stdout
    wait_for(lambda: not remote_sleepers(ssh_hosts, "stage1", "sleep 617"), what="sleep 617 to be gone")


def test_rollback_then_always_run_in_order_after_a_failure(work, ssh_inventory, ssh_hosts):
    log = "echo {} >> order.log"
    book = {
        "name": "order",
        "steps": [
            {"name": "one", "shell": log.format("step1")},
            {"name": "boom", "shell": log.format("step2") + "; exit 7", "register": "boom"},
            {"name": "never", "shell": log.format("never")},
        ],
        "rollback": [
            {"name": "undo", "shell": log.format("rollback-after-rc-{{ boom.rc }}")},
            {"name": "undo more", "shell": log.format("rollback2")},
        ],
        "always": [{"name": "cleanup", "shell": log.format("always")}],
    }
    result = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert result.returncode == 1, result.stdout
    lines = (home(ssh_hosts, "stage1") / "order.log").read_text().split()
    assert lines == ["step1", "step2", "rollback-after-rc-7", "rollback2", "always"]


def test_a_failed_rollback_exits_3(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "broken rollback",
        "steps": [{"shell": "exit 1"}],
        "rollback": [{"name": "cannot undo", "shell": "exit 1"}, {"name": "not reached", "shell": "touch x"}],
        "always": [{"name": "still runs", "shell": "touch always-ran"}],
    }
    result = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert result.returncode == 3, result.stdout
    assert not (home(ssh_hosts, "stage1") / "x").exists()
    assert (home(ssh_hosts, "stage1") / "always-ran").exists()


def test_success_runs_always_but_not_rollback(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "fine",
        "steps": [{"shell": "true"}],
        "rollback": [{"shell": "touch rolled-back"}],
        "always": [{"shell": "touch always-ran"}],
    }
    assert run_book(work, ssh_inventory, book, "--limit", "stage1").returncode == 0
    assert (home(ssh_hosts, "stage1") / "always-ran").exists()
    assert not (home(ssh_hosts, "stage1") / "rolled-back").exists()


def test_register_and_when(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "register",
        "steps": [
            {"name": "probe", "shell": "echo 42; exit 3", "register": "probe", "ignore_errors": True},
            {
                "name": "seen",
                "shell": "echo {{ probe.stdout | trim }}-{{ probe.rc }} > seen",
                "when": "probe.rc == 3",
            },
            {"name": "skipped", "shell": "touch should-not-exist", "when": "'43' in probe.stdout"},
            {"name": "host only", "shell": "touch only-prod1", "when": "inventory_hostname == 'prod1'"},
        ],
    }
    result = run_book(work, ssh_inventory, book, "--limit", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home(ssh_hosts, "prod1") / "seen").read_text() == "42-3\n"
    assert not (home(ssh_hosts, "prod1") / "should-not-exist").exists()
    assert (home(ssh_hosts, "prod1") / "only-prod1").exists()
    assert not (home(ssh_hosts, "prod2") / "only-prod1").exists()
    statuses = step_statuses(events(work / "journal"), "prod1")
    assert statuses[0] == ("steps", "probe", "ignored")
    assert statuses[2] == ("steps", "skipped", "skipped")


def test_run_once_runs_on_one_host_and_shares_its_result(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "once",
        "hosts": "production",
        "steps": [
            {
                "name": "once",
                "shell": "touch ran-once; echo {{ inventory_hostname }}",
                "run_once": True,
                "register": "who",
            },
            {"name": "use", "shell": "echo {{ who.stdout | trim }} > who"},
        ],
    }
    assert run_book(work, ssh_inventory, book).returncode == 0
    ran = [n for n in ("prod1", "prod2") if (home(ssh_hosts, n) / "ran-once").exists()]
    assert len(ran) == 1
    for name in ("prod1", "prod2"):
        assert (home(ssh_hosts, name) / "who").read_text().strip() == ran[0]


def lock_dir(ssh_hosts, name: str) -> Path:
    """The lock folder of site NAME in the test inventory's environment (named after inventory.yml)."""
    return home(ssh_hosts, name) / ".maintkit" / "lock" / "inventory" / name


def test_a_second_run_exits_4_while_the_first_holds_the_lock(work, ssh_inventory, ssh_hosts, shared_dir):
    gate = shared_dir / "gate"
    book = {
        "name": "holder",
        "vars": {"gate": str(gate)},
        "steps": [{"name": "wait", "shell": "while [ ! -e {{ gate }} ]; do sleep 0.05; done", "timeout": 60}],
    }
    path = write_playbook(work, book)
    first = start_cli(
        "run", path, "-i", ssh_inventory, "--limit", "stage1", "--journal-dir", work / "journal", cwd=work
    )
    try:
        wait_for(
            lambda: (lock_dir(ssh_hosts, "stage1") / "holder.json").exists(), what="the first run's lock"
        )
        second = run_cli(
            "run",
            path,
            "-i",
            ssh_inventory,
            "--limit",
            "stage1",
            "--journal-dir",
            work / "journal2",
            cwd=work,
        )
        assert second.returncode == 4, second.stdout + second.stderr
        assert "locked" in second.stdout and "playbook holder" in second.stdout
        assert "run " in second.stdout and "pid" in second.stdout
        gate.touch()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert not lock_dir(ssh_hosts, "stage1").exists()


def test_sigterm_rolls_back_releases_the_lock_and_kills_the_command(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "interrupted",
        "steps": [{"name": "started", "shell": "touch started"}, {"name": "hang", "shell": "sleep 619"}],
        "rollback": [{"name": "undo", "shell": "rm started; touch rolled-back"}],
    }
    path = write_playbook(work, book)
    process = start_cli(
        "run", path, "-i", ssh_inventory, "--limit", "stage1", "--journal-dir", work / "journal", cwd=work
    )
    try:
        wait_for(lambda: remote_sleepers(ssh_hosts, "stage1", "sleep 619"), what="the remote sleep")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 1
    finally:
        if process.poll() is None:
            process.kill()
    assert (home(ssh_hosts, "stage1") / "rolled-back").exists()
    assert not (home(ssh_hosts, "stage1") / "started").exists()
    assert not lock_dir(ssh_hosts, "stage1").exists()
    wait_for(lambda: not remote_sleepers(ssh_hosts, "stage1", "sleep 619"), what="sleep 619 to be gone")
    assert any(e["event"] == "interrupt" for e in events(work / "journal"))


def test_break_lock_takes_only_a_stale_lock(work, ssh_inventory, ssh_hosts):
    import json
    import time

    stale = lock_dir(ssh_hosts, "stage1")
    stale.mkdir(parents=True)
    holder = {
        "run_id": "old-run",
        "user": "x",
        "control_host": "elsewhere",
        "pid": 1,
        "started": "2020-01-01T00:00:00Z",
        "started_epoch": time.time() - 100_000,
    }
    (stale / "holder.json").write_text(json.dumps(holder))
    user = ssh_hosts["stage1"].user
    maintkit_dir = home(ssh_hosts, "stage1") / ".maintkit"
    subprocess.run(["chown", "-R", f"{user}:{user}", str(maintkit_dir)], check=True)
    book = {"name": "breaker", "steps": [{"shell": "touch ran"}]}
    refused = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert refused.returncode == 4 and "--break-lock" in refused.stdout
    assert not (home(ssh_hosts, "stage1") / "ran").exists()
    taken = run_book(work, ssh_inventory, book, "--limit", "stage1", "--break-lock")
    assert taken.returncode == 0, taken.stdout
    assert (home(ssh_hosts, "stage1") / "ran").exists()
    assert any(e["event"] == "lock_broken" for e in events(work / "journal"))


def test_check_mode_prints_commands_and_leaves_no_trace(work, ssh_inventory, ssh_hosts):
    book = {
        "name": "plan",
        "vars": {"dir": "some dir"},
        "steps": [{"name": "make", "shell": "mkdir -p {{ dir }} && touch {{ dir }}/x"}],
        "rollback": [{"name": "undo", "shell": "rm -rf {{ dir }}"}],
    }
    result = run_book(work, ssh_inventory, book, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mkdir -p 'some dir' && touch 'some dir'/x" in result.stdout
    assert "rm -rf 'some dir'" in result.stdout
    for name in ("stage1", "prod1", "prod2"):
        assert not (home(ssh_hosts, name) / "some dir").exists()
        assert not (home(ssh_hosts, name) / ".maintkit").exists()


def test_check_mode_opens_no_connection(work, ssh_inventory, tmp_path):
    inventory = yaml.safe_load(ssh_inventory.read_text())
    for group in inventory["all"]["children"].values():
        for host in group["hosts"].values():
            host["ansible_port"] = 9  # nothing listens there
    closed = tmp_path / "closed.yml"
    closed.write_text(yaml.safe_dump(inventory))
    result = run_book(work, closed, {"name": "plan", "steps": [{"shell": "true"}]}, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_secrets_appear_nowhere(work, ssh_inventory, ssh_hosts, tmp_path):
    canary = "canary-Pa55-7c1f2e"
    book = {
        "name": "secret",
        "vars": {"db_password": canary},
        "steps": [
            {"name": "use it", "shell": "echo {{ db_password }} > used; sleep 1; echo {{ db_password }}"},
            {"name": "fail with it", "shell": "echo {{ db_password }} >&2; exit 1"},
        ],
    }
    result = run_book(work, ssh_inventory, book, "--limit", "stage1", "-vv")
    assert result.returncode == 1
    assert (home(ssh_hosts, "stage1") / "used").read_text().strip() == canary  # it really was used
    assert canary not in result.stdout + result.stderr
    journal_text = "".join(p.read_text() for p in (work / "journal").glob("*.jsonl"))
    assert canary not in journal_text
    assert "***" in journal_text
    json_run = run_book(work, ssh_inventory, book, "--limit", "stage1", "--output", "json")
    assert canary not in json_run.stdout + json_run.stderr


def test_secret_commands_stay_out_of_the_process_list(work, ssh_inventory, ssh_hosts):
    canary = "canary-ps-5d9a"
    book = {
        "name": "ps",
        "vars": {"api_token": canary},
        "steps": [{"shell": "sleep 2.5; echo {{ api_token }} > used"}],
    }
    path = write_playbook(work, book)
    process = start_cli(
        "run", path, "-i", ssh_inventory, "--limit", "stage1", "--journal-dir", work / "journal", cwd=work
    )
    seen = []
    try:
        wait_for(lambda: remote_sleepers(ssh_hosts, "stage1", "sleep 2.5"), what="the command to start")
        while process.poll() is None:
            seen.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert seen and not any(canary in listing for listing in seen)
    assert (home(ssh_hosts, "stage1") / "used").read_text().strip() == canary


def test_a_hostile_value_never_becomes_shell_syntax(work, ssh_inventory, ssh_hosts, shared_dir):
    pwned = shared_dir / "pwned"
    book = {
        "name": "inject",
        "vars": {"title": f"'; touch {pwned}; '", "other": f"$(touch {pwned})"},
        "steps": [
            {"shell": "echo {{ title }} {{ other }} > title.txt"},
            {"shell": {"argv": ["printf", "%s", "{{ title }}"], "chdir": "/tmp"}},
        ],
    }
    result = run_book(work, ssh_inventory, book, "--limit", "stage1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not pwned.exists()
    assert (home(ssh_hosts, "stage1") / "title.txt").read_text() == f"'; touch {pwned}; ' $(touch {pwned})\n"


def test_unknown_host_key_is_refused_then_accepted_with_the_flag(work, ssh_inventory, ssh_hosts, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    inventory = yaml.safe_load(ssh_inventory.read_text())
    inventory["all"]["vars"]["known_hosts"] = str(empty)
    path = tmp_path / "unknown.yml"
    path.write_text(yaml.safe_dump(inventory))
    book = {"name": "keys", "steps": [{"shell": "touch ran"}]}
    refused = run_book(work, path, book, "--limit", "stage1")
    assert refused.returncode == 1
    assert "host key" in refused.stdout.lower() and "--accept-new-host-keys" in refused.stdout
    assert not (home(ssh_hosts, "stage1") / "ran").exists()
    assert empty.read_text() == ""
    accepted = run_book(work, path, book, "--limit", "stage1", "--accept-new-host-keys")
    assert accepted.returncode == 0, accepted.stdout
    assert f"[127.0.0.1]:{ssh_hosts['stage1'].port}" in empty.read_text()
    again = run_book(work, path, book, "--limit", "stage1")
    assert again.returncode == 0, again.stdout


def test_a_changed_host_key_is_refused_even_with_the_flag(work, ssh_inventory, ssh_hosts, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    public = other.with_suffix(".pub").read_text().split()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_hosts['stage1'].port} {public[0]} {public[1]}\n")
    inventory = yaml.safe_load(ssh_inventory.read_text())
    inventory["all"]["vars"]["known_hosts"] = str(wrong)
    path = tmp_path / "changed.yml"
    path.write_text(yaml.safe_dump(inventory))
    result = run_book(
        work,
        path,
        {"name": "keys", "steps": [{"shell": "touch ran"}]},
        "--limit",
        "stage1",
        "--accept-new-host-keys",
    )
    assert result.returncode == 1
    assert "changed" in result.stdout.lower()
    assert not (home(ssh_hosts, "stage1") / "ran").exists()


def test_invalid_playbook_exits_2_before_any_connection(work, ssh_inventory, ssh_hosts):
    path = work / "broken.yml"
    path.write_text("name: broken\nsteps:\n  - name: typo\n    shel: touch ran\n  - shell: echo {{ nope }}\n")
    result = run_cli("run", path, "-i", ssh_inventory, "--journal-dir", work / "journal", cwd=work)
    assert result.returncode == 2
    assert "broken.yml:4:5" in result.stderr and "did you mean" in result.stderr
    assert "broken.yml:5:5" in result.stderr and "nope" in result.stderr
    for name in ("stage1", "prod1", "prod2"):
        assert not (home(ssh_hosts, name) / ".maintkit").exists()
    assert not list((work / "journal").glob("*.jsonl"))


def test_runs_list_and_show_read_the_journal(work, ssh_inventory):
    book = {"name": "journalled", "steps": [{"name": "hello", "shell": "echo hello-journal"}]}
    assert run_book(work, ssh_inventory, book, "--limit", "stage1").returncode == 0
    listed = run_cli("runs", "list", "--journal-dir", work / "journal", cwd=work)
    assert "journalled" in listed.stdout and "done" in listed.stdout
    shown = run_cli("runs", "show", "latest", "--journal-dir", work / "journal", cwd=work)
    assert "hello" in shown.stdout and "hello-journal" not in shown.stdout  # output only with -v
    shown = run_cli("runs", "show", "latest", "-v", "--journal-dir", work / "journal", cwd=work)
    assert "hello-journal" in shown.stdout


def test_quiet_prints_nothing_on_success_and_the_failure_otherwise(work, ssh_inventory):
    quiet_ok = run_book(work, ssh_inventory, {"name": "q", "steps": [{"shell": "echo chatty"}]}, "-q")
    assert quiet_ok.returncode == 0 and quiet_ok.stdout == "" and quiet_ok.stderr == ""
    quiet_bad = run_book(
        work,
        ssh_inventory,
        {"name": "q", "steps": [{"name": "bad step", "shell": "exit 5"}]},
        "-q",
        "--limit",
        "stage1",
    )
    assert quiet_bad.returncode == 1
    assert "bad step" in quiet_bad.stdout and "exit status 5" in quiet_bad.stdout


def test_json_output_is_one_event_per_line(work, ssh_inventory):
    import json

    result = run_book(
        work,
        ssh_inventory,
        {"name": "j", "steps": [{"shell": "true"}]},
        "--output",
        "json",
        "--limit",
        "stage1",
    )
    assert result.returncode == 0
    kinds = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "step_end" in kinds
