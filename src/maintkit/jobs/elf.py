"""What an ELF executable needs of the machine that runs it: architecture, static or not, glibc.

Why: maintkit ships the control node's restic to a host that lacks one (:mod:`.engine_host`). A
binary that cannot run there must never be shipped: the host would fail at the first backup with
``Exec format error`` or ``GLIBC_2.34 not found``, after the snapshot began. Go builds are usually
static, but Debian's restic is dynamically linked against glibc (``readelf -V`` names GLIBC_2.34),
so both cases matter. The header, the program headers and the version-needs section are a few
hundred bytes at known offsets: read with ``struct``, no dependency (the ELF format is frozen).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

PT_INTERP = 3
SHT_GNU_VERNEED = 0x6FFFFFFE

#: ``e_machine`` -> the ``uname -m`` names of machines that run it natively
MACHINES: dict[int, tuple[str, ...]] = {
    3: ("i386", "i486", "i586", "i686"),
    8: ("mips", "mips64"),
    20: ("ppc",),
    21: ("ppc64", "ppc64le"),
    22: ("s390x",),
    40: ("armv6l", "armv7l", "armv8l", "arm"),
    62: ("x86_64", "amd64"),
    183: ("aarch64", "arm64"),
    243: ("riscv64",),
}

_GLIBC = re.compile(r"^GLIBC_(\d+(?:\.\d+)*)$")


class ElfError(ValueError):
    """The file is no ELF executable this module understands; the message says why."""


@dataclass(frozen=True)
class ElfInfo:
    """The facts about an executable that decide where it runs."""

    machine: int  # e_machine
    bits: int  # 32 or 64
    dynamic: bool  # has a program interpreter (ld.so): needs the host's C library
    interpreter: str = ""
    glibc: tuple[int, ...] = ()  # the newest GLIBC_x.y symbol version it needs; () when none
    libraries: tuple[str, ...] = field(default=())  # the libraries its version needs name

    def runs_on(self, uname_machine: str) -> bool:
        return uname_machine in MACHINES.get(self.machine, ())

    @property
    def machine_names(self) -> str:
        return "/".join(MACHINES.get(self.machine, (f"e_machine {self.machine}",)))


def read_elf(path: Path) -> ElfInfo:
    """Given an executable's path, return what it needs of a host. Raise ElfError if it is no ELF."""
    with path.open("rb") as handle:
        return _read(handle)


def _read(f: BinaryIO) -> ElfInfo:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    bits = {1: 32, 2: 64}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if bits is None or order is None:
        raise ElfError("unknown ELF class or byte order")
    word = "Q" if bits == 64 else "I"
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
    # e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    header = struct.Struct(f"{order}HHI{word}{word}{word}IHHHHHH")
    raw = f.read(header.size)
    if len(raw) < header.size:
        raise ElfError("truncated ELF header")
    _type, machine, _v, _entry, phoff, shoff, _flags, _eh, phentsize, phnum, shentsize, shnum, _ = (
        header.unpack(raw)
    )
    interpreter = _interpreter(f, order, bits, phoff, phentsize, phnum)
    glibc: tuple[int, ...] = ()
    libraries: list[str] = []
    if interpreter:
        for library, version in _version_needs(f, order, bits, shoff, shentsize, shnum):
            if library not in libraries:
                libraries.append(library)
            match = _GLIBC.match(version)
            if match:
                glibc = max(glibc, tuple(int(p) for p in match.group(1).split(".")))
    return ElfInfo(machine, bits, bool(interpreter), interpreter, glibc, tuple(libraries))


def _interpreter(f: BinaryIO, order: str, bits: int, phoff: int, entsize: int, count: int) -> str:
    """The PT_INTERP path (``/lib64/ld-linux-x86-64.so.2``), or "" for a static executable.

    A static-pie binary has a dynamic section but no interpreter: it needs nothing of the host.
    """
    # 64: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz
    # 32: p_type, p_offset, p_vaddr, p_paddr, p_filesz
    entry = struct.Struct(f"{order}IIQQQQ" if bits == 64 else f"{order}IIIII")
    for index in range(count):
        f.seek(phoff + index * entsize)
        raw = f.read(entry.size)
        if len(raw) < entry.size:
            raise ElfError("truncated program header")
        fields = entry.unpack(raw)
        if fields[0] != PT_INTERP:
            continue
        offset, size = (fields[2], fields[5]) if bits == 64 else (fields[1], fields[4])
        f.seek(offset)
        return f.read(min(size, 4096)).split(b"\0", 1)[0].decode("ascii", "replace")
    return ""


def _sections(
    f: BinaryIO, order: str, bits: int, shoff: int, entsize: int, count: int
) -> list[tuple[int, int, int, int, int]]:
    """Every section header as (type, offset, size, link, info)."""
    # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info
    entry = struct.Struct(f"{order}IIQQQQII" if bits == 64 else f"{order}IIIIIIII")
    out: list[tuple[int, int, int, int, int]] = []
    for index in range(count):
        f.seek(shoff + index * entsize)
        raw = f.read(entry.size)
        if len(raw) < entry.size:
            raise ElfError("truncated section header")
        _name, kind, _flags, _addr, offset, size, link, info = entry.unpack(raw)
        out.append((kind, offset, size, link, info))
    return out


def _version_needs(
    f: BinaryIO, order: str, bits: int, shoff: int, entsize: int, count: int
) -> list[tuple[str, str]]:
    """(library, symbol version) pairs of the ``.gnu.version_r`` section: what ``readelf -V`` lists."""
    sections = _sections(f, order, bits, shoff, entsize, count) if shoff else []
    pairs: list[tuple[str, str]] = []
    need = struct.Struct(f"{order}HHIII")  # vn_version, vn_cnt, vn_file, vn_aux, vn_next
    aux = struct.Struct(f"{order}IHHII")  # vna_hash, vna_flags, vna_other, vna_name, vna_next
    for kind, offset, _size, link, info in sections:
        if kind != SHT_GNU_VERNEED or link >= len(sections):
            continue
        strtab = sections[link][1]
        position = offset
        for _ in range(info):  # sh_info: the number of Verneed entries
            f.seek(position)
            _version, cnt, file_name, aux_off, next_off = need.unpack(f.read(need.size))
            library = _string(f, strtab + file_name)
            here = position + aux_off
            for _ in range(cnt):
                f.seek(here)
                _hash, _flags, _other, name, aux_next = aux.unpack(f.read(aux.size))
                pairs.append((library, _string(f, strtab + name)))
                if not aux_next:
                    break
                here += aux_next
            if not next_off:
                break
            position += next_off
    return pairs


def _string(f: BinaryIO, offset: int) -> str:
    f.seek(offset)
    return f.read(256).split(b"\0", 1)[0].decode("ascii", "replace")
