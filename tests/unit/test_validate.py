"""Validation before a run: host selection, variables, templates, parameter types, all problems at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from maintkit.config.validate import load_run
from maintkit.config.variables import DEFAULTS, load_secrets, parse_extra_vars
from maintkit.engine.runconfig import RunConfig
from maintkit.model.problems import InvalidInput
from maintkit.secrets import Redactor

INVENTORY = """\
all:
  vars:
    site_root: /srv/all
    level: group-all
    db_password: inventory-secret-value
  children:
    web:
      vars: {level: group-web, t: 5}
      hosts:
        web1: {level: host, ansible_host: 10.0.0.1}
        web2:
    db:
      hosts:
        db1: {t: abc}
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, "inventories/staging.yml", INVENTORY)
    return tmp_path


def run(
    project: Path,
    playbook: str,
    *,
    limit: list[str] | None = None,
    var_pairs: list[str] | None = None,
    var_files: list[str] | None = None,
    env: str = "staging",
) -> RunConfig:
    write(project, "playbooks/pb.yml", playbook)
    return load_run("pb", env, None, limit, var_pairs or [], var_files or [], project)


def problems(project: Path, playbook: str, **kwargs: object) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        run(project, playbook, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


# -- a valid run -------------------------------------------------------------------------------------


def test_a_valid_run_config(project: Path) -> None:
    config = run(project, "name: ok\nhosts: web\nsteps:\n  - shell: ls {{ site_root }}\n")
    assert config.playbook.name == "ok"
    assert config.inventory.name == "staging"
    assert [h.name for h in config.hosts] == ["web1", "web2"]
    assert set(config.variables) == {"web1", "web2"}
    assert config.extra_vars == {}
    assert config.warnings == []


def test_variable_precedence(project: Path) -> None:
    playbook = "name: ok\nvars: {from_playbook: pb, site_root: /srv/pb}\nsteps:\n  - shell: ls\n"
    write(project, "extra.yml", "site_root: /srv/file\nfrom_file: f\n")
    config = run(project, playbook, var_pairs=["site_root=/srv/cli"], var_files=[str(project / "extra.yml")])
    web1, web2, db1 = (config.variables[n] for n in ("web1", "web2", "db1"))
    assert web1["lock_ttl"] == DEFAULTS["lock_ttl"]  # shipped default
    assert (web1["level"], web2["level"], db1["level"]) == ("host", "group-web", "group-all")
    assert web1["from_playbook"] == "pb" and web1["from_file"] == "f"
    assert web1["site_root"] == "/srv/cli"  # --var beats --vars-file beats playbook vars beats inventory
    assert web1["inventory_hostname"] == "web1" and web1["group_names"] == ["web"]
    assert web1["maintkit_env"] == "staging" and web1["run_id"] == "validate"
    assert web1["playbook_name"] == "ok" and web1["check_mode"] is False


def test_limit_intersects_the_playbook_hosts(project: Path) -> None:
    config = run(project, "name: ok\nhosts: [web, db]\nsteps:\n  - shell: ls\n", limit=["web2,db1"])
    assert [h.name for h in config.hosts] == ["web2", "db1"]


def test_secrets_are_loaded_into_the_redactor(project: Path) -> None:
    config = run(project, "name: ok\nsteps:\n  - shell: ls\n")
    assert config.redactor("pw=inventory-secret-value") == "pw=***"


def test_registers_of_earlier_steps_and_guards_are_defined(project: Path) -> None:
    playbook = """\
    name: ok
    steps:
      - shell: ls
        register: listing
      - shell: echo {{ listing.stdout }}
        when: listing.rc == 0 and maybe is not defined
    rollback:
      - shell: echo {{ cleanup.rc }}
    always:
      - shell: echo done
        register: cleanup
    """
    assert run(project, playbook).playbook.registers == ["listing", "cleanup"]


# -- problems ----------------------------------------------------------------------------------------


def test_undefined_variable_with_suggestion_reported_once_for_all_hosts(project: Path) -> None:
    assert problems(project, "name: x\nsteps:\n  - shell: ls {{ site_rooot }}\n") == [
        "playbooks/pb.yml:3:5: steps[0].shell.cmd: undefined variable 'site_rooot' "
        "(did you mean 'site_root'?)"
    ]


def test_variable_undefined_on_some_hosts_names_them(project: Path) -> None:
    playbook = "name: x\nsteps:\n  - shell: sleep {{ t }}\n    when: ansible_host != ''\n"
    assert problems(project, playbook) == [
        "playbooks/pb.yml:4:5: steps[0].when: undefined variable 'ansible_host' (on web2, db1)"
    ]


def test_register_of_a_later_step_is_not_yet_defined(project: Path) -> None:
    playbook = "name: x\nsteps:\n  - shell: echo {{ later.stdout }}\n  - shell: ls\n    register: later\n"
    assert problems(project, playbook) == [
        "playbooks/pb.yml:3:5: steps[0].shell.cmd: variable 'later' is registered only by a later step"
    ]


def test_templated_param_type_is_checked_after_rendering(project: Path) -> None:
    playbook = """\
    name: x
    steps:
      - http:
          url: http://{{ inventory_hostname }}/
          request_timeout: '{{ t | int }}s'
    """
    assert problems(project, playbook) == [
        "playbooks/pb.yml:5:7: steps[0].http.request_timeout: Input should be a valid number, "
        "unable to parse string as a number (after rendering the template)"
    ]


def test_a_templated_param_given_whole_by_a_variable_is_reported_where_the_value_was_written(
    project: Path,
) -> None:
    playbook = """\
    name: x
    steps:
      - http:
          url: http://{{ inventory_hostname }}/
          request_timeout: '{{ t }}'
    """
    assert problems(project, playbook) == [
        "inventories/staging.yml:14:15: t: Input should be a valid number, unable to parse string as a "
        "number (the value reaches steps[0].http.request_timeout at playbooks/pb.yml:5) (on db1)"
    ]


def test_params_reading_registers_are_left_for_the_run(project: Path) -> None:
    playbook = """\
    name: ok
    steps:
      - shell: ls
        register: r
      - http: {url: "{{ r.stdout }}", request_timeout: "{{ r.rc }}"}
    """
    run(project, playbook)


def test_templated_variables_are_checked(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_API_TOKEN", raising=False)
    playbook = """\
    name: x
    vars:
      backups: "{{ site_rot }}/backups"
      latest: "{{ backups }}/latest"
      api_token: "{{ lookup('env', 'SHOP_API_TOKEN') }}"
    steps:
      - shell: ls {{ latest }}
    """
    # reported where the mistake is, not again at every template reading the variable
    assert problems(project, playbook) == [
        "playbooks/pb.yml:3:3: backups: variable 'backups' reads undefined variable 'site_rot' "
        "(did you mean 'site_root'?)",
        "playbooks/pb.yml:5:3: api_token: environment variable 'SHOP_API_TOKEN' is not set "
        "(lookup('env', 'SHOP_API_TOKEN') has no default)",
    ]


def test_host_pattern_and_limit_matching_nothing(project: Path) -> None:
    assert problems(project, "name: x\nhosts: [web, dbs]\nsteps:\n  - shell: ls\n", limit=["web3"]) == [
        "playbooks/pb.yml:2:14: hosts[1]: 'dbs' is no host or group of inventory 'staging' "
        "(did you mean 'db'?)",
        "command line: --limit: 'web3' matches no host of inventory 'staging' (did you mean 'web'?)",
    ]


def test_limit_outside_the_playbook_hosts_selects_nothing(project: Path) -> None:
    assert problems(project, "name: x\nhosts: web\nsteps:\n  - shell: ls\n", limit=["db1"]) == [
        "playbooks/pb.yml:2:1: hosts: 'hosts' and --limit select no host"
    ]


def test_bad_extra_vars() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_extra_vars(["novalue", "bad-name=1", "ok=1"], ["/nonexistent/vars.yml"])
    assert [str(p) for p in caught.value.problems] == [
        "/nonexistent/vars.yml: file not found",
        "command line: --var: number 1 is not KEY=VALUE (no '='); its text is not shown"
        " (it may hold a secret)",
        "command line: --var: number 2: the part before '=' is not a variable name; its text is not shown"
        " (it may hold a secret)",
    ]
    assert parse_extra_vars(["a=b=c"], []) == {"a": "b=c"}


def test_messages_never_contain_secret_values(project: Path) -> None:
    playbook = """\
    name: x
    steps:
      - http: {url: "{{ db_password }}", request_timeout: "{{ db_password }}"}
      - shell: echo {{ db_password.nope }}
    """
    found = problems(project, playbook)
    assert len(found) == 3
    assert not any("inventory-secret-value" in p for p in found)


def test_short_secrets_are_warned_about(project: Path) -> None:
    config = run(project, "name: ok\nvars: {api_key: abc}\nsteps:\n  - shell: ls\n")
    assert [str(w) for w in config.warnings] == [
        "playbooks/pb.yml:2:8: api_key: secret 'api_key' is shorter than 4 characters: it cannot be masked"
    ]


def test_all_problems_of_all_inputs_at_once(project: Path) -> None:
    write(project, "inventories/broken.yml", "all:\n  hosts:\n    h1: {port: abc}\n")
    playbook = """\
    name: x
    serial: 0
    steps:
      - shell: ls {{ nope }}
      - shel: ls
    """
    found = problems(project, playbook, env="broken", var_pairs=["oops"])
    assert found == [
        "playbooks/pb.yml:2:1: serial: 'serial' must be a number of hosts (1 or more) "
        "or a percentage from 1% to 100%, not 0",
        "playbooks/pb.yml:5:5: steps[1].shel: unknown action 'shel' (did you mean 'shell'?)",
        "inventories/broken.yml:3:10: all.hosts.h1.port: 'port' must be an integer from 1 to 65535, "
        "not a string 'abc'",
        "command line: --var: number 1 is not KEY=VALUE (no '='); its text is not shown"
        " (it may hold a secret)",
    ]


def test_load_secrets_copies_a_run_configs_secrets_into_another_redactor(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_API_TOKEN", "token-from-env")
    config = run(project, "name: ok\nsteps:\n  - shell: echo {{ lookup('env', 'SHOP_API_TOKEN') }}\n")
    redactor = Redactor()
    assert load_secrets(redactor, config) == []
    assert redactor("inventory-secret-value token-from-env") == "*** ***"


def test_a_malformed_var_neither_shows_its_text_nor_hides_the_good_ones(project: Path) -> None:
    playbook = "name: x\nhosts: web\nsteps:\n  - shell: echo {{ greeting }}\n"
    found = problems(project, playbook, var_pairs=["greeting=hi", "api_token:CANARY-s3cr3t-value"])
    assert found == [
        "command line: --var: number 2 is not KEY=VALUE (no '='); its text is not shown"
        " (it may hold a secret)"
    ]
