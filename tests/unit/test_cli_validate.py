"""``maintkit validate`` and ``run`` refuse bad storage and retention settings before anything runs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from maintkit.cli import cli

INVENTORY = """\
all:
  vars:
    storage:
      - name: offsite
        type: s3
        bukcet: backups
        aws_secret_access_key: hunter2hunter2
    retention: {keep_dayly: 3}
  hosts:
    shop: {connection: local}
"""


def test_storage_and_retention_problems_are_reported_together(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "book.yml").write_text("name: t\nsteps:\n  - shell: touch ran\n")
    result = CliRunner().invoke(cli, ["run", "book.yml", "-i", "inv.yml", "--journal-dir", "j"])
    assert result.exit_code == 2
    output = result.output
    assert "storage[0].bukcet: unknown key 'bukcet' (did you mean 'bucket'?)" in output
    assert "credentials do not belong in the inventory" in output
    assert "keep_dayly" in output and "keep_daily" in output
    assert "hunter2hunter2" not in output
    assert not (tmp_path / "ran").exists() and not (tmp_path / "j").exists()


def test_a_good_inventory_validates(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    shop: {connection: local}\n")
    (tmp_path / "book.yml").write_text("name: t\nsteps:\n  - shell: 'true'\n")
    result = CliRunner().invoke(cli, ["validate", "book.yml", "-i", "inv.yml"])
    assert result.exit_code == 0, result.output
    assert "ok: playbook 't'" in result.output


def test_printed_text_is_never_turned_into_emoji(tmp_path: Path, monkeypatch) -> None:
    # rich turns ":100:" into an emoji by default: "book.yml:100:5" and "echo a:100:b" must print as written
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    shop: {connection: local, lock_dir: ./lock}\n")
    (tmp_path / "book.yml").write_text("name: t\nsteps:\n  - shell: echo a:100:b\n")
    result = CliRunner().invoke(cli, ["run", "book.yml", "-i", "inv.yml", "--journal-dir", "j", "-v"])
    assert result.exit_code == 0, result.output
    assert "$ echo a:100:b" in result.output and "💯" not in result.output
    (tmp_path / "bad.yml").write_text("name: t\nsteps:\n" + "#\n" * 97 + "  - null\n")
    result = CliRunner().invoke(cli, ["validate", "bad.yml", "-i", "inv.yml"])
    assert result.exit_code == 2 and "bad.yml:100:5:" in result.output, result.output
