"""Refusing unsafe tar members on the control node, while the archive streams to the host.

Why here and not by trusting the host's tar: a snapshot is data from a server that may have been
compromised. GNU tar strips leading ``/`` and skips ``..`` members, but a symlink pointing out of
the root followed by a member written *through* it is the classic escape, and what a given tar
version does about it varies. So every member is checked here, in the bytes the host will receive,
and the restore stops before the chunk holding a bad header is released (:mod:`.stream`): the
host's extraction into its sibling folder is killed and nothing is swapped in.

Refused: absolute names (``/etc/x``), any ``..`` component, symlinks whose target is absolute or
resolves outside the root, hard links to such names, device nodes, and headers that do not pass
their checksum. Names come from the ustar header (``prefix/name``), GNU long names (``L``/``K``)
and pax headers (``path``/``linkpath``), exactly as tar would use them.

The parser is push-based (``write`` chunks of the plain archive) and keeps memory bounded: member
data is skipped, only headers (and long-name / pax records up to 1 MiB) are buffered.
"""

from __future__ import annotations

import posixpath

BLOCK = 512
#: long names and pax records larger than this are refused rather than buffered
MAX_SPECIAL = 1024 * 1024

REGULAR = {b"0", b"\0", b"7"}
HARDLINK = b"1"
SYMLINK = b"2"
DEVICES = {b"3", b"4"}
DIRECTORY = b"5"
FIFO = b"6"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
PAX = b"x"
PAX_GLOBAL = b"g"
ALLOWED = REGULAR | {HARDLINK, SYMLINK, DIRECTORY, FIFO}


class UnsafeMember(Exception):
    """A member the restore refuses; the message names it and says why."""


def leaves_root(name: str) -> str | None:
    """Why the member name ``name`` would be written outside the restore root, or None if it is safe."""
    if name.startswith("/"):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in the path"
    return None


def link_leaves_root(name: str, target: str) -> str | None:
    """Why a symlink ``name -> target`` points outside the root, or None when it stays inside."""
    if target.startswith("/"):
        return "symlink to an absolute path"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name.rstrip("/")), target))
    if resolved == ".." or resolved.startswith("../"):
        return "symlink pointing outside the root"
    return None


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large values
        value = field[0] & 0x3F
        for byte in field[1:]:
            value = value << 8 | byte
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """Parse ``LEN key=value\\n`` records."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise UnsafeMember("a pax header is malformed") from None
        if length <= 0:
            break
        record = data[space + 1 : pos + length].rstrip(b"\n")
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarGuard:
    """Feed it the plain (decompressed) archive with :meth:`write`; it raises :class:`UnsafeMember`
    on the first member the restore must refuse. ``members`` and ``plain_bytes`` count what passed."""

    def __init__(self) -> None:
        self.members = 0
        self.plain_bytes = 0
        self._buf = bytearray()
        self._need = BLOCK  # bytes to collect before acting
        self._skip = 0  # member data (and padding) to pass over
        self._special: bytes | None = None  # typeflag of the long-name / pax record being collected
        self._special_size = 0
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._pax: dict[str, str] = {}
        self._offset = 0

    def write(self, data: bytes) -> int:
        self.plain_bytes += len(data)
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip -= step
                self._offset += step
                pos += step
                continue
            step = min(self._need - len(self._buf), len(view) - pos)
            self._buf += view[pos : pos + step]
            pos += step
            if len(self._buf) == self._need:
                block = bytes(self._buf)
                self._buf.clear()
                self._on_block(block)
        return len(data)

    @property
    def complete(self) -> bool:
        """True when the stream ended between members (not inside a header or member data)."""
        return not self._buf and not self._skip and self._special is None

    # -- internals ---------------------------------------------------------------------------------

    def _on_block(self, block: bytes) -> None:
        if self._special is not None:
            self._on_special(block[: self._special_size])
            self._offset += self._need
            self._need = BLOCK
            return
        offset = self._offset
        self._offset += BLOCK
        if not block.strip(b"\0"):
            return  # end-of-archive blocks and padding: keep reading, a member after them is checked too
        stored = _octal(block[148:156])
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != computed:
            raise UnsafeMember(f"not a valid tar header at byte {offset} of the archive (corrupt archive)")
        kind = block[156:157]
        size = _octal(block[124:136])
        padded = -(-size // BLOCK) * BLOCK
        if kind in (GNU_LONGNAME, GNU_LONGLINK, PAX, PAX_GLOBAL):
            if size > MAX_SPECIAL:
                raise UnsafeMember(f"a {kind.decode()} header of {size} bytes at byte {offset} is too large")
            self._special, self._special_size = kind, size
            self._need = max(padded, BLOCK) if size else BLOCK
            if not size:
                self._special = None
            return
        name = _text(block[0:100])
        if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix field completes the name
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        link = _text(block[157:257])
        name = self._pax.get("path", self._long_name or name)
        link = self._pax.get("linkpath", self._long_link or link)
        self._long_name = self._long_link = None
        self._pax = {}
        self._check(kind, name, link)
        self.members += 1
        self._skip = padded if kind not in (HARDLINK, SYMLINK, DIRECTORY) else 0

    def _on_special(self, data: bytes) -> None:
        kind, self._special = self._special, None
        if kind == GNU_LONGNAME:
            self._long_name = _text(data)
        elif kind == GNU_LONGLINK:
            self._long_link = _text(data)
        elif kind == PAX:
            self._pax.update(_pax_records(data))
        else:  # global pax header: a path or linkpath there would apply to every member
            records = _pax_records(data)
            if "path" in records or "linkpath" in records:
                raise UnsafeMember("a global pax header sets a path for every member")

    def _check(self, kind: bytes, name: str, link: str) -> None:
        shown = name if len(name) < 200 else name[:200] + "…"
        if not name:
            raise UnsafeMember("a member has an empty name")
        if kind in DEVICES:
            raise UnsafeMember(f"member {shown!r} is a device node")
        if kind not in ALLOWED:
            raise UnsafeMember(f"member {shown!r} has unsupported type {kind.decode('latin-1')!r}")
        why = leaves_root(name)
        if why:
            raise UnsafeMember(f"member {shown!r} would be written outside the restore root ({why})")
        if kind == HARDLINK:
            why = leaves_root(link)
            if why:
                raise UnsafeMember(f"hard link {shown!r} -> {link!r} leaves the restore root ({why})")
        elif kind == SYMLINK:
            why = link_leaves_root(name, link)
            if why:
                raise UnsafeMember(f"member {shown!r} -> {link!r} is refused ({why})")
