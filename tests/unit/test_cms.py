"""CMS profiles: one registry, and every ``cms``/``app`` parameter typed by it (docs/cms.md)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from maintkit.actions.audit import AuditParams
from maintkit.actions.maintenance import MaintenanceParams, set_command, status_command
from maintkit.cli import cli
from maintkit.cms import base as profiles
from maintkit.cms.base import MaintenanceCli, Profile
from maintkit.config.playbook import load_playbook, shipped_playbooks
from maintkit.config.validate import load_run
from maintkit.jobs.restore import sql
from maintkit.model.problems import InvalidInput
from maintkit.sources.appconfig import config_host, db_config_php, version_php, write_db_config_php
from maintkit.sources.files import FilesSource, tar_command

#: what each shipped CMS supports (the table in docs/cms.md)
SUPPORT = {
    "magento": {"config", "release", "maintenance", "url_rewrite"},
    "wordpress": {"config", "maintenance", "url_rewrite"},
    "prestashop": {"config", "release", "maintenance"},
    "none": {"release"},
}


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(root: Path, steps: str) -> list[str]:
    write(root, "inv.yml", "all:\n  hosts:\n    shop1: {connection: local}\n")
    write(root, "pb.yml", "name: pb\nsteps:\n" + textwrap.dedent(steps))
    with pytest.raises(InvalidInput) as caught:
        load_run(str(root / "pb.yml"), None, "inv.yml", None, [], [], root)
    return [f"{Path(p.file).name}:{p.line}: {p.path}: {p.message}" for p in caught.value.problems]


@pytest.fixture
def toy() -> Iterator[Profile]:
    """A CMS registered by a test alone, as a new module in maintkit/cms/ would register itself."""

    def status(program: str, root: str, host_path: object) -> str:
        return f"{program} maint status {root}"

    def switch(program: str, root: str, on: bool, host_path: object) -> str:
        return f"{program} maint {'on' if on else 'off'} {root}"

    profile = profiles.register(
        Profile(
            name="toyshop",
            title="Toy shop",
            excludes=("var/toycache",),
            maintenance=MaintenanceCli("php", status, switch),
        )
    )
    yield profile
    profiles.unregister("toyshop")


def test_the_registry_lists_every_shipped_cms_with_what_it_supports() -> None:
    assert profiles.names() == ["magento", "wordpress", "prestashop", "none"]
    for name, features in SUPPORT.items():
        profile = profiles.get(name)
        assert {f for f in profiles.FEATURES if profile.has(f)} == features, name  # type: ignore[arg-type]
    assert profiles.names("release") == ["magento", "prestashop", "none"]
    assert profiles.names("url_rewrite") == ["magento", "wordpress"]


def test_an_unknown_cms_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: "):
        profiles.get("drupal")


def test_a_cms_name_must_be_safe_on_a_command_line() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        profiles.register(Profile(name="bad name; rm -rf /", title="x"))


def test_a_feature_a_cms_lacks_is_refused_at_its_line_with_the_cmss_that_have_it(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """\
          - release: {op: list, root: /srv/shop, cms: wordpress}
          - maintenance: {cms: none, state: "on", root: /srv/shop}
          - restore:
              files: {root: /srv/shop}
              rewrite_urls: {app: prestashop, url: "https://copy.example"}
        """,
    )
    assert found == [
        "pb.yml:3: steps[0].release.cms: Input should be 'magento', 'prestashop' or 'none' "
        "(wordpress has no atomic releases)",
        "pb.yml:4: steps[1].maintenance.cms: Input should be 'magento', 'wordpress' or 'prestashop' "
        "(none has no maintenance mode)",
        "pb.yml:7: steps[2].restore.rewrite_urls.app: Input should be 'magento' or 'wordpress' "
        "(prestashop has no URL rewriting of a restored copy)",
    ]


def test_a_database_read_from_an_app_config_needs_a_cms_with_one(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "  - snapshot: {database: {from: none, root: /srv/shop}}\n")
    assert "Input should be 'magento', 'wordpress' or 'prestashop' (none has no application config" in problem


def test_a_toy_profile_registered_in_a_test_is_accepted_by_validation_and_by_actions(
    tmp_path: Path, toy: Profile
) -> None:
    write(tmp_path, "inv.yml", "all:\n  hosts:\n    shop1: {connection: local}\n")
    write(
        tmp_path,
        "pb.yml",
        """\
        name: pb
        steps:
          - maintenance: {cms: toyshop, state: "on", root: /srv/toy}
          - snapshot: {files: {root: /srv/toy, cms: toyshop}}
        """,
    )
    run = load_run(str(tmp_path / "pb.yml"), None, "inv.yml", None, [], [], tmp_path)
    assert run is not None
    params = MaintenanceParams.model_validate({"cms": "toyshop", "state": "on", "root": "/srv/toy"})
    assert status_command(params, "/srv/toy") == "php maint status /srv/toy"
    assert set_command(params, "/srv/toy", False) == "php maint off /srv/toy"
    assert "--exclude=var/toycache" in tar_command(FilesSource(root="/srv/toy", cms="toyshop"))
    shown = CliRunner().invoke(cli, ["actions", "maintenance"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "magento | wordpress | prestashop | toyshop" in shown.output
    # no release layout: the release action still refuses it, naming who has one
    refused = problems_of(tmp_path, "  - release: {op: list, root: /srv/toy, cms: toyshop}\n")
    assert refused == [
        "pb.yml:3: steps[0].release.cms: Input should be 'magento', 'prestashop' or 'none' "
        "(toyshop has no atomic releases)"
    ]


def test_the_php_programs_have_one_case_per_profile_with_an_app_config() -> None:
    for program in (db_config_php(), write_db_config_php()):
        cases = [line for line in program.splitlines() if line.startswith("case '")]
        assert cases == ["case 'magento':", "case 'wordpress':", "case 'prestashop':"]
        assert "MAINTKIT_CASES" not in program
    assert [line for line in version_php().splitlines() if line.startswith("case '")] == [
        "case 'magento':",
        "case 'wordpress':",
        "case 'prestashop':",
        "case 'none':",
    ]


def test_each_profile_spells_the_database_server_its_own_way() -> None:
    assert config_host("magento", "db", 3307, None) == ("db:3307", "")
    assert config_host("prestashop", "db", 3307, None) == ("db", "3307")
    assert config_host("magento", "db", 3306, "/run/my.sock") == ("/run/my.sock", "")
    assert config_host("wordpress", "db", 3306, "/run/my.sock") == ("localhost:/run/my.sock", "")
    with pytest.raises(ValueError, match="none has no application config"):
        config_host("none", "db", 3306, None)


def test_url_rewrites_come_from_the_profile_and_are_refused_for_others() -> None:
    assert sql.url_table("magento", None) == "core_config_data"
    assert sql.url_table("wordpress", None) == "wp_options"
    assert sql.url_table("wordpress", "shop_") == "shop_options"
    text = sql.rewrite_urls_sql("copy", "wordpress", "https://copy.example/")
    assert text.startswith("UPDATE `copy`.`wp_options` SET option_value = ")
    assert b"https://copy.example".hex() in text  # literals travel hex-encoded
    with pytest.raises(ValueError, match="prestashop has no URL rewriting"):
        sql.rewrite_urls_sql("copy", "prestashop", "https://copy.example/")


def test_profiles_name_shipped_playbooks_and_audit_tools_that_exist() -> None:
    shipped = shipped_playbooks()
    tools = AuditParams.model_fields["tool"].annotation.__args__  # type: ignore[union-attr]
    for name in profiles.names():
        profile = profiles.get(name)
        for playbook in (profile.update_playbook, profile.promote_playbook):
            assert playbook is None or playbook in shipped, (name, playbook)
        assert profile.audit is None or profile.audit in tools, name
        if profile.release is not None and profile.update_playbook is not None:
            assert profile.has("maintenance"), name  # an update takes the shop into maintenance


def _named_cmss(value: object) -> Iterator[str]:
    """Literal CMS names in step parameters (``cms:``, ``from:``, ``app:``; templates left out)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("cms", "from", "app") and isinstance(item, str) and "{" not in item:
                yield item
            else:
                yield from _named_cmss(item)
    elif isinstance(value, list):
        for item in value:
            yield from _named_cmss(item)


def test_a_profiles_update_and_promote_playbooks_name_that_cms_alone() -> None:
    shipped = shipped_playbooks()
    for name in profiles.names():
        profile = profiles.get(name)
        for playbook in filter(None, (profile.update_playbook, profile.promote_playbook)):
            book = load_playbook(shipped[playbook])
            named = {
                cms for step in book.steps + book.rollback + book.always for cms in _named_cmss(step.params)
            }
            assert named == {name}, (playbook, named)
