"""Running one bad input through ``maintkit run`` and ``validate`` and checking the four promises.

Every case of the corpus (and every example the fuzz tests make) must give: exit 2, an error naming
the file and line, no traceback, and zero commands on any host. "Zero commands" is checked three
ways: no transport was created or asked to run anything (the engine was never built), the journal
folder was never made, and a step that would ``touch ran`` left no ``ran`` file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from maintkit.cli import cli

#: the inventory a case gets when it brings none: this machine, and an SSH host nothing listens on
#: (connecting to it would fail the run with exit 1, not 2)
DEFAULT_INVENTORY = """\
all:
  hosts:
    shop:
      connection: local
      site_root: ./site
      lock_dir: ./lock
    far:
      ansible_host: 127.0.0.1
      ansible_port: 9
      lock_dir: ./lock
"""
DEFAULT_PLAYBOOK = "name: t\nsteps:\n  - shell: touch ran\n"
ERROR_LINE = re.compile(r"^error: (?P<file>[^:\s]+(?: line)?)(?::(?P<line>\d+))?", re.MULTILINE)


@dataclass
class Case:
    """One bad input: the files it writes, the arguments, and where the error must point."""

    id: str
    where: str  # "pb.yml:3" (file and line) or "command line"
    says: str = ""  # a fragment of the message
    playbook: str | None = None
    inventory: str | None = None
    vars_file: str | None = None
    args: list[str] = field(default_factory=list)
    encoding: str = "utf-8"  # of the file the case is about (latin-1 writes 0xE9 for "é")
    never_shown: list[str] = field(default_factory=list)  # text that must not appear (secrets)
    snapshots: bool = False  # an inventory case `maintkit snapshots list` must refuse as well

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(**data)


class Recorder:
    """Counts every attempt to build the engine or run a command anywhere."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        from maintkit.engine import runner
        from maintkit.transport import local

        def refuse(what: str) -> Any:
            def record(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(what)
                raise AssertionError(f"{what} was called for invalid input")

            return record

        monkeypatch.setattr(runner.Runner, "__init__", refuse("Runner"))
        monkeypatch.setattr(local.LocalTransport, "run", refuse("LocalTransport.run"))


def write_case(case: Case, folder: Path) -> list[str]:
    """Write the case's files into ``folder``; return the command-line arguments after the playbook."""
    files = {
        "pb.yml": case.playbook if case.playbook is not None else DEFAULT_PLAYBOOK,
        "inv.yml": case.inventory if case.inventory is not None else DEFAULT_INVENTORY,
    }
    if case.vars_file is not None:
        files["vars.yml"] = case.vars_file
    target = case.where.split(":")[0]
    for name, text in files.items():
        (folder / name).write_bytes(text.encode(case.encoding if name == target else "utf-8"))
    args = ["-i", "inv.yml"]
    if case.vars_file is not None:
        args += ["--vars-file", "vars.yml"]
    return [*args, *case.args]


def check_case(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the case through ``run`` and ``validate``; assert the four promises (and the message)."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("COLUMNS", "400")
    args = write_case(case, folder)
    recorder = Recorder(monkeypatch)
    commands = [["run", "pb.yml", *args, "--journal-dir", "journal"], ["validate", "pb.yml", *args]]
    if case.snapshots:
        commands.append(["snapshots", "list", "-i", "inv.yml"])
    for command in commands:
        result = CliRunner().invoke(cli, command)
        output = result.output
        assert "Traceback" not in output, output
        assert result.exit_code == 2, f"{command[0]}: exit {result.exit_code}\n{output}\n{result.exception!r}"
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        located = [m for m in ERROR_LINE.finditer(output)]
        assert located, output
        for match in located:  # every error names its file, and its line unless it is the command line
            assert match["line"] is not None or match["file"] == "command line", output
        assert case.where in output, f"expected an error at {case.where}:\n{output}"
        assert case.says in output, f"expected {case.says!r}:\n{output}"
        for secret in case.never_shown:
            assert secret not in output, output
    assert recorder.calls == []
    assert not (folder / "journal").exists()
    assert not (folder / "ran").exists()
    assert not (folder / "lock").exists()


def corpus_folder() -> Path:
    return Path(os.path.dirname(__file__))
