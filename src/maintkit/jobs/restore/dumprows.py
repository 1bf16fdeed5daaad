"""Counting the rows a SQL dump holds, per table, while it streams through the control node.

Why count the dump rather than trust the manifest's counts: the manifest's row counts are taken in
their own transaction, just before the dump's (no client can share another's snapshot). On a busy
shop they differ by the orders placed in between. What a restore must prove is that every row *the
dump holds* arrived, so the drill compares the restored ``COUNT(*)`` with this count, exactly, and
shows the manifest's count beside it.

What is counted: the tuples of ``INSERT INTO `t` VALUES (…),(…);`` statements at the top level of a
``mariadb-dump``/``mysqldump`` file (one row per line, as MariaDB 10.x writes them, or all on one
line, as older dumps do). Statements between ``DELIMITER ;;`` and ``DELIMITER ;`` are skipped: those
are trigger, routine and event bodies, whose ``INSERT`` lines are code, not data. Strings are
skipped with their backslash escapes (a doubled ``''`` reads as two adjacent strings, which counts
the same). The dump is UTF-8 (``--default-character-set=utf8mb4``) and binary columns are hex
(``--hex-blob``), so the ASCII bytes ``( ) ' ; \\`` only ever mean themselves.

Cost: a few C-speed passes per *chunk* of values, no Python step per line (issue 16: the per-line
loop cost ~0.6 s of CPU per 200 MB). A dump never holds a raw newline inside a string (the tools
write ``\\n``), so every line break in a ``VALUES`` list is outside any string, and a line that ends
with ``;`` ends the statement (that ``;`` cannot be inside a string). So all the complete lines of
values in a chunk, up to the statement's end, are one *region*, counted at once:

* one row per line (``(…),`` lines) and no ``(`` or ``;`` in any string: the count of ``(`` equals
  the count of lines, and that is the row count (``bytes.count``, memchr speed);
* otherwise the region is *reduced* to its structure: the escapes that matter (``\\\\`` and
  ``\\'``: only they change where a string ends) removed by one regular expression, then every
  byte but ``'``, ``(`` and ``;`` deleted (``bytes.translate``), then adjacent ``''`` pairs
  removed (removing two adjacent quotes changes no other byte's inside/outside-a-string state);
  what is left is tiny, and its remaining strings are removed by a regular expression before
  the ``(`` are counted;
* a ``;`` left mid-region after that (a statement ending before its line does: no dump tool writes
  it) sends the region to the line-by-line path, which handles it exactly.

Only a line longer than ``LINE_LIMIT`` (a huge BLOB row) is not buffered whole: it is scanned byte
class by byte class, its string state carried across chunks, so memory stays bounded whatever the
dump holds. Measured in ``benchmarks/dumprows_speed.py``.
"""

from __future__ import annotations

import re

_HEAD_MAX = 4096
#: longest line of values buffered whole; longer ones are scanned piecewise
LINE_LIMIT = 8 * 1024 * 1024
#: a complete string literal (backslash escapes)
_STRING_LITERAL = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'")
_INSERT = re.compile(rb"^(?:INSERT(?: IGNORE)?|REPLACE) INTO `((?:[^`]|``)+)`")
_VALUES_KEYWORD = re.compile(rb"\sVALUES(?=[\s(])")
_IN_VALUES = re.compile(rb"[(';]")
_IN_STRING = re.compile(rb"[\\']")
#: the escapes that decide where a string ends (any other ``\X`` leaves the quotes as they are)
_QUOTE_ESCAPE = re.compile(rb"\\[\\']")
#: every byte but the three that carry a region's structure
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b"'(;")
#: a string in the reduced form (only quotes, parentheses and semicolons are left)
_REDUCED_STRING = re.compile(rb"'[^']*'")

_LINE, _VALUES, _STRING = 0, 1, 2


class DumpRowCounter:
    """A sink for the plain dump; ``rows`` maps each table with data to its number of rows."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self._state = _LINE
        self._head = bytearray()  # the start of the current line (up to _HEAD_MAX bytes)
        self._head_full = False
        self._in_block = False  # between DELIMITER ;; and DELIMITER ;
        self._table = ""
        self._escape = False
        self._pending = bytearray()  # the current line of values, while it is short enough to buffer
        self._long = False  # scanning a line too long to buffer, piecewise

    def write(self, data: bytes) -> int:
        i, n = 0, len(data)
        while i < n:
            if self._state == _LINE:
                i = self._line(data, i)
            elif self._state == _VALUES:
                i = self._values(data, i)
            else:
                i = self._string(data, i)
        return n

    # -- states -------------------------------------------------------------------------------------

    def _line(self, data: bytes, i: int) -> int:
        """Collect the line's head; switch to VALUES at an INSERT's ``VALUES`` keyword."""
        newline = data.find(b"\n", i)
        end = len(data) if newline < 0 else newline
        if not self._head_full:
            before = len(self._head)
            self._head += data[i : min(end, i + _HEAD_MAX - before)]
            self._head_full = len(self._head) >= _HEAD_MAX
            start = self._values_start(at_line_end=newline >= 0)
            if start is not None:
                self._state, self._long = _VALUES, False
                self._pending.clear()
                self._head.clear()
                self._head_full = False
                return i + (start - before)
        if newline < 0:
            return len(data)
        self._line_ended(bytes(self._head))
        self._head.clear()
        self._head_full = False
        return newline + 1

    def _values_start(self, at_line_end: bool) -> int | None:
        """Where the tuples start in the head (just after ``VALUES``), or None."""
        if self._in_block:
            return None
        match = _INSERT.match(self._head)
        if match is None:
            return None
        head = bytes(self._head) + (b"\n" if at_line_end else b"")
        keyword = _VALUES_KEYWORD.search(head, match.end())
        if keyword is None or keyword.end() > len(self._head):
            return None
        self._table = match.group(1).replace(b"``", b"`").decode("utf-8", "replace")
        self.rows.setdefault(self._table, 0)
        return keyword.end()

    def _line_ended(self, head: bytes) -> None:
        if head.startswith(b"DELIMITER "):
            self._in_block = head.strip() != b"DELIMITER ;"

    def _values(self, data: bytes, i: int) -> int:
        """Count the rows of whole lines at once; hand over-long lines to the piecewise scanner."""
        bulk_ok = True  # False once a region needed the line-by-line path: the rest of this chunk too
        while i < len(data):
            if self._long:
                newline = data.find(b"\n", i)
                end = len(data) if newline < 0 else newline
                i = self._scan(data[:end], i)
                if self._state != _VALUES or i < end:  # the statement ended, or a string continues
                    return i
                if newline < 0:
                    return len(data)
                self._long = False  # a line break is never inside a string
                i = newline + 1
                continue
            if bulk_ok and not self._pending:
                bulk = self._region(data, i)
                bulk_ok = bulk is not None
                if bulk is not None:
                    if self._state != _VALUES:
                        return bulk  # the statement's end: its newline belongs to the LINE state
                    i = bulk
                    continue
            newline = data.find(b"\n", i)
            if newline < 0:
                self._pending += data[i:]
                if len(self._pending) > LINE_LIMIT:
                    line, self._pending = bytes(self._pending), bytearray()
                    self._long = True
                    rest = self._scan(line, 0)
                    if self._state != _VALUES:  # the statement ended inside the buffered part
                        self._continue_line(line[rest:])
                return len(data)
            line = bytes(self._pending) + data[i:newline] if self._pending else data[i:newline]
            self._pending.clear()
            if self._count_line(line):
                return newline  # the rest of the line (its newline) belongs to the LINE state
            i = newline + 1
        return i

    def _region(self, data: bytes, i: int) -> int | None:
        """Count every complete line of values from ``i`` at once (see the module doc).

        Returns where counting stopped (the ``\\n`` ending the statement, with the state back at
        LINE; or just after the last complete line), or None when there is no complete line or the
        region needs the line-by-line path."""
        last = data.rfind(b"\n", i)
        if last < 0:
            return None
        end = data.find(b";\n", i, last + 1)
        stop = end + 1 if end >= 0 else last  # the region excludes the newline it stops at
        region = data[i:stop]
        lines = region.count(b"\n") + 1
        opens = region.count(b"(")
        semicolons = region.count(b";")
        if opens == lines and semicolons == (1 if end >= 0 else 0):
            rows = opens  # one "(" per line: each row's own; no string holds "(" or ";"
        else:
            outside = _outside_strings(region)
            semi = outside.find(b";")
            if semi >= 0 and (end < 0 or semi != len(outside) - 1):
                return None  # a statement ends mid-line: counted line by line
            rows = outside.count(b"(")
        self.rows[self._table] += rows
        if end >= 0:
            self._state = _LINE
            return stop
        return last + 1

    def _count_line(self, line: bytes) -> bool:
        """Count the rows of one complete line of values; True when it ends the statement.

        The common line is one row, ``(…),`` or ``(…);``: a single ``(`` and at most a final ``;``
        are then outside any string (a line cannot end inside one), so no string needs removing.
        """
        opens = line.count(b"(")
        if opens > 1 or line.find(b";", 0, len(line) - 1) >= 0:
            stripped = _outside_strings(line)
            end = stripped.find(b";")
            self.rows[self._table] += stripped[: end if end >= 0 else len(stripped)].count(b"(")
            if end >= 0:
                self._state = _LINE
            return end >= 0
        self.rows[self._table] += opens
        if line.endswith(b";"):
            self._state = _LINE
            return True
        return False

    def _continue_line(self, rest: bytes) -> None:
        """After a statement ended inside a buffered over-long line: the rest is ordinary line text."""
        self._long = False
        if rest:
            self.write(rest)

    def _scan(self, data: bytes, i: int) -> int:
        """Piecewise scanner of an over-long line: string state carried across calls."""
        if self._state == _STRING:
            i = self._string(data, i)
        while i < len(data) and self._state == _VALUES:
            i = self._scan_values(data, i)
            if self._state == _STRING:
                i = self._string(data, i)
        return i

    def _scan_values(self, data: bytes, i: int) -> int:
        while True:
            match = _IN_VALUES.search(data, i)
            if match is None:
                return len(data)
            i = match.end()
            char = match.group()
            if char == b"'":
                self._state = _STRING
                return i
            if char == b"(":
                self.rows[self._table] += 1
            elif char == b";":  # ends the statement
                self._state = _LINE
                return i

    def _string(self, data: bytes, i: int) -> int:
        if self._escape:
            self._escape = False
            i += 1
        while i < len(data):
            match = _IN_STRING.search(data, i)
            if match is None:
                return len(data)
            if match.group() == b"\\":
                if match.end() >= len(data):
                    self._escape = True
                    return len(data)
                i = match.end() + 1
                continue
            self._state = _VALUES
            return match.end()
        return i


def _outside_strings(values: bytes) -> bytes:
    """The ``(`` and ``;`` of complete lines of values that are outside every string, in order.

    See the module doc: the quote escapes removed, every byte but ``' ( ;`` deleted, adjacent
    quote pairs removed, then the (few) strings left. All C-speed passes, no Python per row."""
    structure = _QUOTE_ESCAPE.sub(b"", values) if b"\\" in values else values
    structure = structure.translate(None, _NOT_STRUCTURE).replace(b"''", b"")
    return _REDUCED_STRING.sub(b"", structure) if b"'" in structure else structure
