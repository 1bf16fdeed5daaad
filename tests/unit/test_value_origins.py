"""A wrong value handed to a shipped playbook's step by a variable is reported where it was written.

``rollback`` (shipped) passes ``{{ cms | default('magento') }}`` to ``maintenance.cms``; ``demo`` passes
``{{ files }}`` to ``snapshot.files``. A bad ``cms`` must point at the inventory line (or the vars file,
or ``--var``) that set it, not at the shipped playbook.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from maintkit.cli import cli
from maintkit.config.validate import load_run
from maintkit.model.problems import InvalidInput, Problem


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(
    root: Path,
    playbook: str,
    inventory: str,
    var_pairs: list[str] | None = None,
    var_files: list[str] | None = None,
) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        load_run(playbook, None, inventory, None, var_pairs or [], var_files or [], root)
    return caught.value.problems


def test_a_host_var_is_reported_at_its_inventory_line_with_the_steps_it_reached(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        """\
        all:
          hosts:
            shop1:
              connection: local
              release_root: /srv/shop
              cms: magento2
        """,
    )
    [problem] = problems(tmp_path, "rollback", "inv.yml")
    assert (problem.file, problem.line, problem.column, problem.path) == ("inv.yml", 6, 7, "cms")
    assert "Input should be 'magento', 'wordpress' or 'prestashop'" in problem.message
    assert "steps[0].maintenance.cms at " in problem.message and "rollback.yml:" in problem.message
    assert str(problem).startswith("inv.yml:6:7: cms: Input should be")


def test_a_group_var_is_reported_at_the_groups_vars_line(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        """\
        all:
          children:
            shops:
              vars:
                release_root: /srv/shop
                cms: magento2
              hosts:
                shop1: {connection: local}
                shop2: {connection: local}
        """,
    )
    [problem] = problems(tmp_path, "rollback", "inv.yml")
    assert (problem.file, problem.line, problem.path) == ("inv.yml", 6, "cms")
    assert "(on " not in problem.message  # one place, both hosts


def test_a_group_vars_file_of_the_folder_layout_is_named_with_its_line(tmp_path):
    write(
        tmp_path,
        "inv/hosts.yml",
        "all:\n  children:\n    shops:\n      hosts:\n        shop1: {connection: local}\n",
    )
    write(tmp_path, "inv/group_vars/shops.yml", "release_root: /srv/shop\n\ncms: magento2\n")
    [problem] = problems(tmp_path, "rollback", "inv")
    assert (problem.file, problem.line, problem.column) == ("inv/group_vars/shops.yml", 3, 1)


def test_a_value_given_with_var_says_it_came_from_var(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        "all:\n  hosts:\n    shop1: {connection: local, release_root: /srv, cms: magento}\n",
    )
    [problem] = problems(tmp_path, "rollback", "inv.yml", var_pairs=["cms=magento2"])
    assert str(problem).startswith("command line: --var cms: Input should be")


def test_a_value_from_a_vars_file_is_reported_at_its_line(tmp_path):
    write(tmp_path, "inv.yml", "all:\n  hosts:\n    shop1: {connection: local, release_root: /srv}\n")
    write(tmp_path, "extra.yml", "# extra\ncms: magento2\n")
    [problem] = problems(tmp_path, "rollback", "inv.yml", var_files=[str(tmp_path / "extra.yml")])
    assert (problem.file, problem.line, problem.path) == (str(tmp_path / "extra.yml"), 2, "cms")


def test_a_key_inside_a_mapping_variable_is_reported_at_its_own_line(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        """\
        all:
          hosts:
            shop1:
              connection: local
              site_root: ./site
              files:
                root: ./site
                cms: magentoo
        """,
    )
    [problem] = problems(tmp_path, "demo", "inv.yml")
    assert (problem.file, problem.line, problem.path) == ("inv.yml", 8, "files.cms")
    assert "steps[1].snapshot.files.cms" in problem.message


def test_a_variable_passing_another_on_points_at_the_one_that_holds_the_value(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        """\
        all:
          vars:
            cms: "{{ shop_cms }}"
          hosts:
            shop1:
              connection: local
              release_root: /srv/shop
              shop_cms: magento2
        """,
    )
    [problem] = problems(tmp_path, "rollback", "inv.yml")
    assert (problem.file, problem.line, problem.path) == ("inv.yml", 8, "shop_cms")


def test_a_value_made_by_a_template_in_the_playbook_still_points_at_the_playbook(tmp_path):
    write(
        tmp_path,
        "inv.yml",
        "all:\n  hosts:\n    shop1: {connection: local, release_root: /srv, flavour: magento}\n",
    )
    write(
        tmp_path,
        "pb.yml",
        "name: pb\nsteps:\n  - maintenance: {cms: '{{ flavour }}2', state: 'on', root: /srv}\n",
    )
    [problem] = problems(tmp_path, str(tmp_path / "pb.yml"), "inv.yml")
    assert problem.file.endswith("pb.yml") and problem.line == 3
    assert problem.message.endswith("(after rendering the template)")


def test_a_value_nobody_wrote_maintkits_default_points_at_the_playbook(tmp_path):
    write(tmp_path, "inv.yml", "all:\n  hosts:\n    shop1: {connection: local}\n")
    write(
        tmp_path,
        "pb.yml",
        "name: pb\nsteps:\n  - http: {url: 'http://127.0.0.1/', request_timeout: '{{ lock_dir }}'}\n",
    )
    [problem] = problems(tmp_path, str(tmp_path / "pb.yml"), "inv.yml")
    assert problem.file.endswith("pb.yml") and problem.line == 3
    assert problem.message.endswith("(after rendering the template)")


def test_validate_prints_the_inventory_line_for_a_shipped_playbook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "inv.yml", "all:\n  hosts:\n    shop1:\n      connection: local\n      cms: magento2\n")
    result = CliRunner().invoke(cli, ["validate", "rollback", "-i", "inv.yml", "--var", "release_root=/srv"])
    assert result.exit_code == 2
    first = result.output.splitlines()[0]
    assert first.startswith("error: inv.yml:5:7: cms: Input should be 'magento', 'wordpress' or 'prestashop'")
    assert "steps[0].maintenance.cms at " in first
