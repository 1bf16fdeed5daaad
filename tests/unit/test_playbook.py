"""Playbooks: finding them, reading them, and every malformed playbook reported at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from maintkit.config import playbook as playbook_module
from maintkit.config.playbook import load_playbook, resolve_playbook
from maintkit.model.problems import InvalidInput, Position


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, "pb.yml", text)
    with pytest.raises(InvalidInput) as caught:
        load_playbook(path, tmp_path)
    return [str(p) for p in caught.value.problems]


def problem(tmp_path: Path, text: str) -> str:
    (only,) = problems(tmp_path, text)
    return only


# -- finding -----------------------------------------------------------------------------------------


def test_resolve_by_path_then_playbooks_folder(tmp_path: Path) -> None:
    direct = write(tmp_path, "custom/mine.yml", "name: x\n")
    local = write(tmp_path, "playbooks/nightly.yaml", "name: y\n")
    assert resolve_playbook("custom/mine.yml", tmp_path) == direct
    assert resolve_playbook("nightly", tmp_path) == local


def test_resolve_falls_back_to_shipped_playbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = write(tmp_path, "pkg/nightly-backup.yml", "name: z\n")
    monkeypatch.setattr(playbook_module, "shipped_playbooks", lambda: {"nightly-backup": shipped})
    assert resolve_playbook("nightly-backup", tmp_path) == shipped


def test_resolve_failure_names_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(playbook_module, "shipped_playbooks", lambda: {"nightly-backup": Path("/x.yml")})
    with pytest.raises(InvalidInput) as caught:
        resolve_playbook("nightly-backp", tmp_path)
    assert str(caught.value) == (
        "nightly-backp: no playbook 'nightly-backp' (did you mean 'nightly-backup'?); tried nightly-backp, "
        "playbooks/nightly-backp.yml, playbooks/nightly-backp.yaml, the playbooks shipped with maintkit "
        "(nightly-backup)"
    )


# -- reading -----------------------------------------------------------------------------------------


def test_a_valid_playbook(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pb.yml",
        """\
        name: nightly
        description: back up the shop
        hosts: web, db
        serial: 30%
        vars: {site_root: /srv/shop}
        secret_vars: [api_token]
        steps:
          - shell: ls {{ site_root }}
            register: listing
            retries: 2
            retry_delay: 1
            timeout: 30
          - name: smoke
            http:
              url: https://shop.example/
              status: 200
            when: listing.rc == 0
            run_once: true
        rollback:
          - shell: {argv: [echo, rollback]}
        always:
          - shell: echo done
            ignore_errors: true
        """,
    )
    playbook = load_playbook(path, tmp_path)
    assert (playbook.name, playbook.hosts, playbook.serial, playbook.max_parallel) == (
        "nightly",
        ["web", "db"],
        "30%",
        10,
    )
    assert playbook.secret_vars == ["api_token"]
    first, second = playbook.steps
    assert first.name == "shell: ls {{ site_root }}"  # a default name from the shorthand
    assert first.action == "shell" and first.params == {"cmd": "ls {{ site_root }}"}
    assert (first.register, first.retries, first.retry_delay, first.timeout) == ("listing", 2, 1.0, 30.0)
    assert first.position == Position("pb.yml", 8, 5)
    assert second.name == "smoke" and second.when == "listing.rc == 0" and second.run_once
    assert second.params["status"] == 200  # the action's own validator accepts one status
    assert playbook.rollback[0].name == "shell"
    assert playbook.always[0].ignore_errors
    assert playbook.registers == ["listing"]


def test_templated_params_are_not_type_checked_when_read(tmp_path: Path) -> None:
    text = "name: x\nsteps:\n  - http: {url: '{{ u }}', request_timeout: '{{ t }}'}\n"
    path = write(tmp_path, "pb.yml", text)
    assert load_playbook(path, tmp_path).steps[0].params["request_timeout"] == "{{ t }}"


# -- malformed playbooks, each at its line and column ------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: [ls\n") == (
        "pb.yml:4:1: YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 3)"
    )


def test_tab_indentation(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n\t- shell: ls\n") == (
        "pb.yml:3:1: YAML syntax error: a tab character where YAML needs spaces: "
        "indent with spaces, never tabs"
    )


def test_duplicate_key(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: ls\nsteps:\n  - shell: rm\n") == (
        "pb.yml:4:1: steps: duplicate key 'steps' (first written at line 2; YAML would keep only the last)"
    )


def test_unknown_top_level_key_with_suggestion(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nhots: web\nsteps:\n  - shell: ls\n") == (
        "pb.yml:2:1: hots: unknown key 'hots' (did you mean 'hosts'?)"
    )


def test_missing_name(tmp_path: Path) -> None:
    assert problem(tmp_path, "steps:\n  - shell: ls\n") == "pb.yml:1:1: the playbook has no 'name'"


def test_steps_not_a_list(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  shell: ls\n") == (
        "pb.yml:2:1: steps: 'steps' must be a list of steps, not a mapping"
    )


def test_steps_empty(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps: []\n") == "pb.yml:2:1: steps: 'steps' is empty"


def test_step_with_no_action(tmp_path: Path) -> None:
    from maintkit.actions.base import available_actions

    assert problem(tmp_path, "name: x\nsteps:\n  - name: nothing\n    register: r\n") == (
        "pb.yml:3:5: steps[0]: step has no action; one of: " + ", ".join(available_actions())
    )


def test_step_with_two_actions(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: ls\n    http: {url: 'http://x'}\n") == (
        "pb.yml:4:5: steps[0].http: step has two actions: shell and http; a step runs exactly one"
    )


def test_unknown_action_with_suggestion(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shel: ls\n") == (
        "pb.yml:3:5: steps[0].shel: unknown action 'shel' (did you mean 'shell'?)"
    )


def test_unknown_common_key_with_suggestion(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: ls\n    retires: 3\n") == (
        "pb.yml:4:5: steps[0].retires: unknown key 'retires' (did you mean 'retries'?)"
    )


def test_missing_required_param(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - http:\n      status: 200\n") == (
        "pb.yml:3:5: steps[0].http: missing required parameter 'url' of 'http'"
    )


def test_unknown_param_with_suggestion(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell:\n      cmd: ls\n      chdri: /tmp\n") == (
        "pb.yml:5:7: steps[0].shell.chdri: unknown parameter 'chdri' (did you mean 'chdir'?)"
    )


def test_wrong_param_type(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell:\n      cmd: ls\n      expect_rc: [0, two]\n") == (
        "pb.yml:5:22: steps[0].shell.expect_rc[1]: Input should be a valid integer, unable to parse string "
        "as an integer"
    )


def test_param_validator_of_the_action(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - http: {url: 'ftp://x'}\n") == (
        "pb.yml:3:12: steps[0].http.url: url must start with http:// or https://"
    )


def test_model_validator_of_the_action(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: {cmd: ls, argv: [ls]}\n") == (
        "pb.yml:3:5: steps[0].shell: give exactly one of 'cmd' and 'argv'"
    )


@pytest.mark.parametrize(
    ("value", "shown"), [("abc", "'abc'"), ("0", "0"), ("150%", "'150%'"), ("-1", "-1"), ("0%", "'0%'")]
)
def test_bad_serial(tmp_path: Path, value: str, shown: str) -> None:
    assert problem(tmp_path, f"name: x\nserial: {value}\nsteps:\n  - shell: ls\n") == (
        "pb.yml:2:1: serial: 'serial' must be a number of hosts (1 or more) or a percentage from 1% to 100%, "
        f"not {shown}"
    )


def test_negative_retries(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: ls\n    retries: -1\n") == (
        "pb.yml:4:5: steps[0].retries: 'retries' must be an integer of 0 or more, not -1"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("my-result", "'register' must be a variable name (letters, digits and _), not 'my-result'"),
        ("class", "'register' must be a variable name (letters, digits and _), not 'class'"),
        ("run_id", "'register: run_id' would hide the variable maintkit sets; choose another name"),
    ],
)
def test_bad_register_name(tmp_path: Path, value: str, message: str) -> None:
    assert problem(tmp_path, f"name: x\nsteps:\n  - shell: ls\n    register: {value}\n") == (
        f"pb.yml:4:5: steps[0].register: {message}"
    )


def test_invalid_when(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: ls\n    when: r.rc ==\n") == (
        "pb.yml:4:5: steps[0].when: invalid condition: unexpected 'end of template'"
    )


def test_template_syntax_error_in_a_param(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - shell: echo {{ x | nofilter }}\n") == (
        "pb.yml:3:5: steps[0].shell.cmd: template syntax error: unknown filter 'nofilter'"
    )


def test_a_misspelt_filter_is_named_with_the_closest_known_one(tmp_path: Path) -> None:
    text = "name: x\nsteps:\n  - shell: \"echo {{ site_root | defualt('/var/www') }}\"\n"
    assert problem(tmp_path, text) == (
        "pb.yml:3:5: steps[0].shell.cmd: template syntax error: unknown filter 'defualt'"
        " (did you mean 'default'?)"
    )


def test_bad_max_parallel_and_hosts(tmp_path: Path) -> None:
    assert problems(tmp_path, "name: x\nhosts: {web: 1}\nmax_parallel: 0\nsteps:\n  - shell: ls\n") == [
        "pb.yml:2:1: hosts: 'hosts' must be a group or host name or a list of them, not a mapping",
        "pb.yml:3:1: max_parallel: 'max_parallel' must be an integer of 1 or more, not 0",
    ]


def test_step_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert problem(tmp_path, "name: x\nsteps:\n  - ls -l\n") == (
        "pb.yml:3:5: steps[0]: a step must be a mapping (name, one action and its parameters), not a string"
    )


def test_all_errors_at_once(tmp_path: Path) -> None:
    text = """\
    name: x
    serial: 0
    steps:
      - shel: ls
      - shell: ls
        retries: -1
    """
    assert problems(tmp_path, text) == [
        "pb.yml:2:1: serial: 'serial' must be a number of hosts (1 or more) or a percentage "
        "from 1% to 100%, not 0",
        "pb.yml:4:5: steps[0].shel: unknown action 'shel' (did you mean 'shell'?)",
        "pb.yml:6:5: steps[1].retries: 'retries' must be an integer of 0 or more, not -1",
    ]
