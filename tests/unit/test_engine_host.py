"""Deciding how a host gets restic (find, ship, package, never), the commands built, and ELF reading."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from maintkit.jobs.elf import ElfError, ElfInfo, read_elf
from maintkit.jobs.engine_host import (
    HostFacts,
    LocalEngine,
    decide,
    fit_problem,
    package_commands,
    parse_facts,
    parse_version,
    ship_command,
)
from maintkit.model.problems import InvalidInput
from maintkit.storage.config import engine_install_from_vars

FACTS = HostFacts(
    machine="x86_64", glibc=(2, 36), home="/home/shop", path_restic="", path_version=(),
    own_restic="/home/shop/.maintkit/bin/restic", own_exists=False, own_version=(), own_sha256="",
    root=False, sudo=False, sudo_installed=True, package_manager="apt-get",
)  # fmt: skip
STATIC = ElfInfo(machine=62, bits=64, dynamic=False)
DEBIAN = ElfInfo(62, 64, True, "/lib64/ld-linux-x86-64.so.2", (2, 34), ("libc.so.6",))
LOCAL = LocalEngine(Path("/usr/bin/restic"), "a" * 64, 25_000_000, (0, 14, 0), DEBIAN)


def test_version_lines_parse() -> None:
    assert parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64") == (0, 14, 0)
    assert parse_version("restic 0.11.0 (v0.11.0-0-g...)") == (0, 11, 0)
    assert parse_version("bash: restic: command not found") == ()


def test_probe_output_parses() -> None:
    facts = parse_facts(
        "machine=aarch64\nglibc=glibc 2.31\nhome=/h\npath_restic=/usr/bin/restic\n"
        "path_version=restic 0.11.0 compiled\nown_restic=/h/.maintkit/bin/restic\nuid=0\n"
        "package_manager=dnf\nsudo=1\nnoise line\n"
    )
    assert facts.machine == "aarch64" and facts.glibc == (2, 31) and facts.path_version == (0, 11, 0)
    assert facts.root and facts.sudo and facts.package_manager == "dnf" and not facts.own_exists


def test_a_restic_on_path_at_0_14_is_used_whatever_the_mode() -> None:
    facts = replace(FACTS, path_restic="/usr/bin/restic", path_version=(0, 16, 4))
    for mode in ("ship", "package", "never"):
        plan = decide(facts, mode, None, "shop")
        assert (plan.action, plan.command) == ("use", "/usr/bin/restic")


def test_an_old_restic_on_path_gives_way_to_the_shipped_one() -> None:
    facts = replace(FACTS, path_restic="/usr/bin/restic", path_version=(0, 11, 0), own_exists=True,
                    own_version=(0, 14, 0))  # fmt: skip
    plan = decide(facts, "never", None, "shop")
    assert (plan.action, plan.command) == ("use", FACTS.own_restic)


def test_never_names_the_setting_and_what_was_found() -> None:
    facts = replace(FACTS, path_restic="/usr/bin/restic", path_version=(0, 11, 0))
    plan = decide(facts, "never", LOCAL, "shop")
    assert plan.action == "none"
    assert "files_engine_install is 'never'" in plan.problem and "/usr/bin/restic is 0.11.0" in plan.problem
    assert "files_engine_install: ship" in plan.problem


def test_ship_copies_when_the_binary_fits_and_reuses_an_identical_copy() -> None:
    plan = decide(FACTS, "ship", LOCAL, "shop")
    assert (plan.action, plan.command) == ("ship", FACTS.own_restic)
    assert "will be copied (25000000 bytes)" in plan.detail
    same = replace(FACTS, own_exists=True, own_sha256="a" * 64)
    assert "already there with the same SHA-256" in decide(same, "ship", LOCAL, "shop").detail


@pytest.mark.parametrize(
    ("facts", "elf", "expected"),
    [
        (replace(FACTS, machine="aarch64"), STATIC, "built for x86_64/amd64, the host is aarch64"),
        (replace(FACTS, glibc=(2, 31)), DEBIAN, "needs glibc 2.34, the host has 2.31"),
        (replace(FACTS, glibc=()), DEBIAN, "the host has no glibc"),
        (replace(FACTS, glibc=()), STATIC, ""),  # a static build runs on musl too
        (replace(FACTS, glibc=(2, 34)), DEBIAN, ""),
    ],
)
def test_a_binary_fits_by_architecture_and_glibc(facts: HostFacts, elf: ElfInfo, expected: str) -> None:
    assert fit_problem(elf, facts) == expected or (expected and expected in fit_problem(elf, facts))


def test_a_binary_that_does_not_fit_is_not_shipped() -> None:
    plan = decide(replace(FACTS, glibc=(2, 28)), "ship", LOCAL, "shop")
    assert plan.action == "none" and "needs glibc 2.34, the host has 2.28" in plan.problem
    assert "files_engine_install: package" in plan.problem


def test_ship_without_a_control_side_restic_or_with_an_old_one_refuses() -> None:
    assert "control node has none" in decide(FACTS, "ship", None, "shop").problem
    old = replace(LOCAL, version=(0, 12, 1))
    assert "older than 0.14" in decide(FACTS, "ship", old, "shop").problem


def test_package_needs_root_or_passwordless_sudo() -> None:
    refused = decide(FACTS, "package", None, "shop")
    assert refused.action == "none" and "`sudo -n` refuses" in refused.problem
    assert "apt-get install -y -q --no-install-recommends restic" in refused.problem
    no_sudo = decide(replace(FACTS, sudo_installed=False), "package", None, "shop")
    assert "sudo is not installed" in no_sudo.problem
    assert decide(replace(FACTS, sudo=True), "package", None, "shop").detail.endswith("with sudo -n")
    assert decide(replace(FACTS, root=True), "package", None, "shop").detail.endswith("as root")
    none = decide(replace(FACTS, root=True, package_manager=""), "package", None, "shop")
    assert "neither apt-get nor dnf" in none.problem


def test_package_commands_as_root_and_through_sudo() -> None:
    assert package_commands("apt-get", root=True) == [
        "env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends restic",
    ]
    assert package_commands("apt-get", root=False)[1].startswith("sudo -n env DEBIAN_FRONTEND=")
    assert package_commands("dnf", root=False) == ["sudo -n dnf install -y -q restic"]
    with pytest.raises(ValueError, match="unsupported"):
        package_commands("pacman", root=True)


def test_ship_command_checks_the_hash_before_the_rename() -> None:
    command = ship_command("b" * 64)
    assert command.index("sha256sum") < command.index("chmod 0755") < command.index('mv -f "$tmp"')
    with pytest.raises(ValueError):
        ship_command("$(reboot)")


def test_install_mode_is_validated() -> None:
    assert engine_install_from_vars(None) == "ship"
    assert engine_install_from_vars("package") == "package"
    with pytest.raises(InvalidInput) as caught:
        engine_install_from_vars("shipp", file="inv.yml")
    problem = caught.value.problems[0]
    assert problem.file == "inv.yml" and problem.path == "files_engine_install"
    assert "did you mean 'ship'" in problem.message


def elf_bytes(*, bits: int, machine: int, interp: bytes | None) -> bytes:
    """A minimal little-endian ELF: header and one program header (PT_INTERP or PT_LOAD)."""
    if bits == 64:
        ehsize, phentsize = 64, 56
        header = struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
        data_off = ehsize + phentsize
        ph = struct.pack("<IIQQQQQQ", 3 if interp else 1, 0, data_off, 0, 0, len(interp or b""), 0, 0)
    else:
        ehsize, phentsize = 52, 32
        header = struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
        data_off = ehsize + phentsize
        ph = struct.pack("<IIIIIIII", 3 if interp else 1, data_off, 0, 0, len(interp or b""), 0, 0, 0)
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1, 1]) + bytes(9)
    return ident + header + ph + (interp or b"")


def test_elf_headers_read(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.write_bytes(elf_bytes(bits=64, machine=183, interp=None))
    info = read_elf(static)
    assert (info.machine, info.bits, info.dynamic) == (183, 64, False) and info.runs_on("aarch64")
    dynamic = tmp_path / "dynamic"
    dynamic.write_bytes(elf_bytes(bits=32, machine=40, interp=b"/lib/ld-linux-armhf.so.3\0"))
    info = read_elf(dynamic)
    assert info.dynamic and info.interpreter == "/lib/ld-linux-armhf.so.3" and info.runs_on("armv7l")
    assert not info.runs_on("x86_64")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(ElfError):
        read_elf(tmp_path / "script")


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf compares the result")
def test_glibc_needs_match_readelf_on_a_real_binary() -> None:
    path = Path(shutil.which("restic") or "/bin/ls").resolve()
    listing = subprocess.run(["readelf", "-V", "-W", str(path)], capture_output=True, text=True, check=True)
    versions = [
        tuple(int(p) for p in word.removeprefix("GLIBC_").split("."))
        for word in listing.stdout.split()
        if word.startswith("GLIBC_") and word[6:7].isdigit()
    ]
    assert read_elf(path).glibc == (max(versions) if versions else ())
