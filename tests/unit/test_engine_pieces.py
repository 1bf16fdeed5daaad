"""Pure logic of the engine: batching, exit codes, redaction, shell command building, lock paths."""

from __future__ import annotations

import subprocess

import pytest

from maintkit.actions.base import available_actions, get_action
from maintkit.actions.shell import ShellParams, build_command
from maintkit.engine.lock import remote_path
from maintkit.engine.runner import batches
from maintkit.model.hosts import Host
from maintkit.model.results import ActionResult, ExitCode, HostOutcome, RunOutcome, StepOutcome
from maintkit.secrets import MASK, Redactor, is_secret_name


def hosts(n: int) -> list[Host]:
    return [Host(name=f"h{i}") for i in range(n)]


@pytest.mark.parametrize(
    ("count", "serial", "sizes"),
    [
        (5, None, [5]),
        (5, 2, [2, 2, 1]),
        (10, "30%", [3, 3, 3, 1]),
        (3, "100%", [3]),
        (1, "10%", [1]),
        (0, 2, []),
    ],
)
def test_batches_split_hosts_as_serial_says(count, serial, sizes):
    assert [len(b) for b in batches(hosts(count), serial)] == sizes


def test_batches_keep_inventory_order():
    names = [h.name for b in batches(hosts(5), 2) for h in b]
    assert names == ["h0", "h1", "h2", "h3", "h4"]


def _host(**kwargs) -> HostOutcome:
    return HostOutcome("h", started=True, **kwargs)


def test_exit_codes_follow_the_cron_contract():
    ok = _host()
    failed = _host(failed_step="x", rollback_ran=True)
    broken = _host(failed_step="x", rollback_ran=True, rollback_failed=True)
    assert RunOutcome("r", [ok]).exit_code == ExitCode.DONE == 0
    assert RunOutcome("r", [ok, failed]).exit_code == ExitCode.FAILED_ROLLED_BACK == 1
    assert RunOutcome("r", [failed, broken]).exit_code == ExitCode.ROLLBACK_FAILED == 3
    assert RunOutcome("r", [ok], interrupted=True).exit_code == 1
    assert RunOutcome("r", [HostOutcome("never")]).exit_code == 1  # a host that never ran is not "done"
    assert RunOutcome("r", [ok], exit_code_override=ExitCode.LOCKED).exit_code == 4


def test_host_status_names_what_happened():
    assert _host().status == "ok"
    assert _host(failed_step="x").status == "failed"
    assert _host(failed_step="x", rollback_ran=True).status == "rolled_back"
    assert _host(failed_step="x", rollback_ran=True, rollback_failed=True).status == "rollback_failed"
    assert _host(always_failed=True).status == "failed"
    assert HostOutcome("h").status == "not_run"


def test_host_counts_only_main_steps():
    outcome = _host()
    outcome.steps = [
        StepOutcome("a", "shell", "steps", "ok", ActionResult()),
        StepOutcome("b", "shell", "always", "ok", ActionResult()),
    ]
    assert outcome.count("ok") == 1


class TestRedactor:
    def test_masks_secrets_in_nested_values(self):
        redact = Redactor()
        redact.add("hunter2-canary")
        event = {"msg": "pw=hunter2-canary", "list": ["x hunter2-canary"], "n": 3}
        assert redact(event) == {"msg": f"pw={MASK}", "list": [f"x {MASK}"], "n": 3}

    def test_longest_secret_masked_whole(self):
        redact = Redactor()
        redact.add("abcd")
        redact.add("abcdefgh")
        assert redact("abcdefgh") == MASK

    def test_short_values_are_not_masked(self):
        redact = Redactor()
        redact.add("yes")
        redact.add(True)
        assert redact("yes True") == "yes True"

    def test_secret_names(self):
        assert is_secret_name("db_password")
        assert is_secret_name("API_TOKEN")
        assert is_secret_name("aws_secret_access_key")
        assert is_secret_name("whatever", declared=["whatever"])
        assert not is_secret_name("ansible_ssh_private_key_file")
        assert not is_secret_name("site_root")

    def test_add_vars_picks_secret_names(self):
        redact = Redactor()
        redact.add_vars({"db_password": "s3cr3t-pw", "site_root": "/var/www/shop"})
        assert redact("/var/www/shop s3cr3t-pw") == f"/var/www/shop {MASK}"

    def test_exceptions_are_redacted(self):
        redact = Redactor()
        redact.add("s3cr3t-pw")
        assert redact(ValueError("bad s3cr3t-pw")) == f"ValueError: bad {MASK}"


def run_sh(command: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, check=False)


class TestShellCommand:
    def test_argv_items_are_quoted_one_by_one(self, tmp_path):
        command = build_command(ShellParams(argv=["printf", "%s|", "a b", "'; touch pwned; '"]))
        result = run_sh(command, tmp_path)
        assert result.stdout == "a b|'; touch pwned; '|"
        assert not (tmp_path / "pwned").exists()

    def test_creates_guard_skips_when_path_exists(self, tmp_path):
        (tmp_path / "done").touch()
        command = build_command(ShellParams(cmd="touch ran", creates=str(tmp_path / "done")))
        run_sh(command, tmp_path)
        assert not (tmp_path / "ran").exists()

    def test_removes_guard_skips_when_path_is_absent(self, tmp_path):
        command = build_command(ShellParams(cmd="touch ran", removes=str(tmp_path / "absent")))
        run_sh(command, tmp_path)
        assert not (tmp_path / "ran").exists()

    def test_chdir_with_spaces(self, tmp_path):
        folder = tmp_path / "a dir"
        folder.mkdir()
        result = run_sh(build_command(ShellParams(cmd="pwd", chdir=str(folder))), tmp_path)
        assert result.stdout.strip() == str(folder)

    def test_cmd_or_argv_not_both(self):
        with pytest.raises(ValueError, match="exactly one"):
            ShellParams(cmd="ls", argv=["ls"])
        with pytest.raises(ValueError, match="exactly one"):
            ShellParams()


def test_lock_path_keeps_home_expandable(tmp_path):
    assert remote_path("~/.maintkit/lock") == '"$HOME"/.maintkit/lock'
    assert remote_path("/srv/my lock") == "'/srv/my lock'"
    result = run_sh(f"HOME={tmp_path}; echo {remote_path('~/x y')}", tmp_path)
    assert result.stdout.strip() == f"{tmp_path}/x y"


def test_every_action_module_registers_its_action():
    names = available_actions()
    assert {"shell", "http"} <= set(names)
    for name in names:
        action = get_action(name)
        assert action is not None and action.name == name and action.summary


def test_run_status_names_an_interrupt_apart_from_a_failure_and_keeps_exit_codes():
    ok = HostOutcome("a", started=True)
    rolled_back = HostOutcome("b", started=True, failed_step="x", rollback_ran=True, interrupted=True)
    broken = HostOutcome("c", started=True, failed_step="x", rollback_ran=True, rollback_failed=True)
    assert RunOutcome("r", [ok]).status == "done"
    assert RunOutcome("r", [ok, rolled_back], interrupted=True).status == "interrupted"
    assert RunOutcome("r", [ok, rolled_back], interrupted=True).exit_code == 1
    assert RunOutcome("r", [ok, HostOutcome("d", started=True, failed_step="x")]).status == "failed"
    assert RunOutcome("r", [broken], interrupted=True).status == "rollback_failed"
    assert RunOutcome("r", [broken], interrupted=True).exit_code == 3
