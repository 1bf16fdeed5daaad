"""Ansible YAML inventories: groups, precedence, connection settings, the folder layout, and errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from maintkit.config.inventory import load_inventory
from maintkit.model.problems import InvalidInput

STAGING = """\
all:
  vars:
    site_root: /srv/all
    ansible_user: deploy
    secret_vars: [db_pass]
  hosts:
    solo:
      connection: local
  children:
    web:
      vars:
        site_root: /srv/web
        port: 2222
      hosts:
        web1:
          ansible_host: 10.0.0.1
          host: ignored.example
          user: root
        web2:
    eu:
      children:
        web:
      vars:
        region: eu
        site_root: /srv/eu
db:
  vars:
    known_hosts: ../known_hosts
    accept_new_host_keys: true
  hosts:
    db1:
      port: 22
      key: ~/.ssh/db
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(root: Path, text: str, env: str = "bad") -> list[str]:
    write(root, f"inventories/{env}.yml", text)
    with pytest.raises(InvalidInput) as caught:
        load_inventory(env, None, root)
    return [str(p) for p in caught.value.problems]


# -- reading -----------------------------------------------------------------------------------------


def test_groups_hosts_and_ansible_implicit_all(tmp_path: Path) -> None:
    write(tmp_path, "inventories/staging.yml", STAGING)
    inventory = load_inventory("staging", None, tmp_path)
    assert inventory.name == "staging"
    assert inventory.path == "inventories/staging.yml"
    assert list(inventory.hosts) == ["solo", "web1", "web2", "db1"]
    assert inventory.groups["all"] == ["solo", "web1", "web2", "db1"]
    assert inventory.groups["eu"] == ["web1", "web2"]  # children expanded
    assert inventory.groups["db"] == ["db1"]  # a top-level group is a child of all
    assert inventory.groups["ungrouped"] == ["solo"]
    assert inventory.secret_vars == ["db_pass"]


def test_precedence_all_then_parent_then_child_then_host(tmp_path: Path) -> None:
    write(tmp_path, "inventories/staging.yml", STAGING)
    hosts = load_inventory("staging", None, tmp_path).hosts
    assert hosts["web1"].vars["site_root"] == "/srv/web"  # child group web beats parent eu
    assert hosts["web1"].vars["region"] == "eu"
    assert hosts["web1"].groups == ["all", "eu", "web"]  # nearest last
    assert hosts["db1"].vars["site_root"] == "/srv/all"
    assert "secret_vars" not in hosts["db1"].vars


def test_connection_settings_and_aliases(tmp_path: Path) -> None:
    write(tmp_path, "inventories/staging.yml", STAGING)
    hosts = load_inventory("staging", None, tmp_path).hosts
    web1, web2, db1, solo = hosts["web1"], hosts["web2"], hosts["db1"], hosts["solo"]
    assert (web1.address, web1.port, web1.user) == ("10.0.0.1", 2222, "root")  # ansible_host beats host
    assert (web2.address, web2.port, web2.user) == ("web2", 2222, "deploy")
    assert web1.vars["ansible_host"] == "10.0.0.1"  # connection vars stay readable by templates
    assert solo.connection == "local" and web1.connection == "ssh"
    assert db1.key_file == "~/.ssh/db"
    assert db1.known_hosts == str((tmp_path / "known_hosts").resolve())  # relative to the inventory
    assert db1.accept_new_host_keys is True and web1.accept_new_host_keys is False


def test_folder_layout_with_group_vars_and_host_vars(tmp_path: Path) -> None:
    write(
        tmp_path,
        "inventories/prod/hosts.yml",
        """\
        all:
          vars: {level: all-inline}
          children:
            shop:
              vars: {level: shop-inline, only_inline: yes}
              hosts:
                shop1: {level: host-inline, ansible_connection: local}
                shop2:
        """,
    )
    write(tmp_path, "inventories/prod/group_vars/all.yml", "level: all-file\nfrom_all: 1\n")
    write(tmp_path, "inventories/prod/group_vars/shop/main.yaml", "level: shop-file\n")
    write(tmp_path, "inventories/prod/host_vars/shop1.yml", "level: host-file\n")
    inventory = load_inventory("prod", None, tmp_path)
    shop1, shop2 = inventory.hosts["shop1"], inventory.hosts["shop2"]
    assert shop1.vars["level"] == "host-file"
    assert shop2.vars["level"] == "shop-file"
    assert shop2.vars["from_all"] == 1 and shop2.vars["only_inline"] is True
    assert shop1.connection == "local"
    assert inventory.name == "prod"


def test_dash_i_takes_a_file_or_a_folder_and_wins_over_env(tmp_path: Path) -> None:
    write(tmp_path, "elsewhere/mine.yaml", "all:\n  hosts:\n    h1:\n")
    write(tmp_path, "elsewhere/site/hosts.yaml", "all:\n  hosts:\n    h2:\n")
    assert list(load_inventory(None, "elsewhere/mine.yaml", tmp_path).hosts) == ["h1"]
    assert load_inventory(None, "elsewhere/mine.yaml", tmp_path).name == "mine"
    folder = load_inventory("staging", "elsewhere/site", tmp_path)
    assert list(folder.hosts) == ["h2"] and folder.name == "staging"


def test_host_in_no_group_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "inventories/one.yaml", "all:\n  hosts:\n    lonely:\n")
    inventory = load_inventory("one", None, tmp_path)
    assert inventory.select(["all"])[0].name == "lonely"
    assert inventory.hosts["lonely"].groups == ["all"]


# -- errors, each with its line and column -----------------------------------------------------------


def test_missing_inventory_names_the_paths_tried(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_inventory("nope", None, tmp_path)
    assert str(caught.value) == (
        "inventories/nope.yml: no inventory for environment 'nope' (tried inventories/nope.yml, "
        "inventories/nope.yaml, inventories/nope.ini, inventories/nope/hosts.yml, "
        "inventories/nope/hosts.yaml, inventories/nope/hosts.ini, inventories/nope/hosts)"
    )


def test_unknown_group_key_with_suggestion(tmp_path: Path) -> None:
    text = """\
    all:
      childen:
        web:
          hosts: {w1: }
    """
    assert problems(tmp_path, text) == [
        "inventories/bad.yml:2:3: all.childen: unknown key 'childen' in group 'all' "
        "(did you mean 'children'?)",
    ]


def test_host_written_directly_under_a_group(tmp_path: Path) -> None:
    text = "web:\n  hosts:\n    w1:\n  w2: {ansible_host: x}\n"
    assert problems(tmp_path, text) == [
        "inventories/bad.yml:4:3: web.w2: unknown key 'w2' in group 'web'; "
        "a group holds only hosts, children, vars",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("abc", "a string 'abc'"), ("70000", "an integer 70000"), ("true", "a boolean True")],
)
def test_port_must_be_an_integer_in_range(tmp_path: Path, value: str, shown: str) -> None:
    text = f"all:\n  hosts:\n    web1:\n      ansible_port: {value}\n"
    assert problems(tmp_path, text) == [
        f"inventories/bad.yml:4:7: all.hosts.web1.ansible_port: 'ansible_port' must be an integer "
        f"from 1 to 65535, not {shown}",
    ]


def test_undefined_child_group(tmp_path: Path) -> None:
    text = """\
    all:
      children:
        webservers:
          hosts: {w1: }
    production:
      children:
        webserver:
    """
    assert problems(tmp_path, text) == [
        "inventories/bad.yml:7:5: production.children.webserver: child group 'webserver' is not defined "
        "anywhere (did you mean 'webservers'?)",
    ]


def test_groups_that_contain_each_other(tmp_path: Path) -> None:
    text = """\
    a:
      hosts: {h1: }
      children:
        b:
          children:
            a:
    """
    assert problems(tmp_path, text) == [
        "inventories/bad.yml:6:9: a.children.b.children.a: groups contain each other: a -> b -> a",
    ]


def test_inventory_without_hosts(tmp_path: Path) -> None:
    assert problems(tmp_path, "all:\n  vars: {x: 1}\n") == [
        "inventories/bad.yml:1:1: the inventory defines no host"
    ]


def test_hosts_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "web:\n  hosts: [w1, w2]\n") == [
        "inventories/bad.yml:2:3: web.hosts: 'hosts' must be a mapping, not a list "
        "(write each host as a key: 'hosts: {web1: {ansible_host: ...}}')",
    ]


def test_host_given_an_address_instead_of_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "all:\n  hosts:\n    w1: 10.0.0.1\n") == [
        "inventories/bad.yml:3:5: all.hosts.w1: host 'w1' must be a mapping of variables, not a string "
        "(for an address write 'w1: {ansible_host: ...}')",
    ]


def test_bad_connection_and_variable_name(tmp_path: Path) -> None:
    text = "all:\n  vars:\n    connection: locl\n    my-var: 1\n  hosts: {h: }\n"
    assert problems(tmp_path, text) == [
        "inventories/bad.yml:3:5: all.vars.connection: 'connection' must be 'ssh' or 'local', "
        "not a string 'locl' (did you mean 'local'?)",
        "inventories/bad.yml:4:5: all.vars.my-var: 'my-var' is not a valid variable name "
        "(letters, digits and _)",
    ]


def test_group_vars_file_for_an_unknown_group(tmp_path: Path) -> None:
    write(tmp_path, "inventories/prod/hosts.yml", "web:\n  hosts: {w1: }\n")
    write(tmp_path, "inventories/prod/group_vars/webb.yml", "x: 1\n")
    with pytest.raises(InvalidInput) as caught:
        load_inventory("prod", None, tmp_path)
    assert str(caught.value) == (
        "inventories/prod/group_vars/webb.yml: no group 'webb' in the inventory (did you mean 'web'?)"
    )


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = """\
    all:
      hosts:
        h1: {port: abc}
      vars: [x]
      hots: {}
    """
    assert len(problems(tmp_path, text)) == 3


def test_host_vars_outside_a_run_read_the_inventory_with_extra_above_and_no_playbook(tmp_path: Path) -> None:
    from maintkit.config.variables import host_vars

    write(
        tmp_path,
        "inventories/prod.yml",
        """
        all:
          vars: {site_root: /var/www/shop, backups: "{{ site_root }}/backups", retention: {keep_last: 3}}
          hosts:
            web1: {site: shop}
        """,
    )
    inventory = load_inventory("prod", None, tmp_path)
    variables = host_vars(inventory, inventory.hosts["web1"], {"retention": {"keep_last": 9}})
    assert variables["site"] == "shop" and variables["maintkit_env"] == "prod"
    assert variables["retention"] == {"keep_last": 9}  # extra ranks above the inventory
    assert variables["inventory_dir"] == str(Path(inventory.path).parent)
    assert "backups" in variables.templated  # rendered when read, as in a run
    assert "playbook_name" not in variables and "run_id" not in variables  # no invented playbook
