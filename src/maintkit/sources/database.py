"""What a database snapshot reads, and the commands that read it without exposing the password.

A :class:`DatabaseSource` is either explicit (``name``, ``user``, ``password``, ``host``…) or names
the application whose config holds the settings (``from: magento`` + ``root``).

How the password travels (never on a command line, never in ``ps``):

* explicit: :func:`dump_command` returns a script and the bytes of a MySQL defaults file. The
  engine sends the bytes on the command's stdin; the script copies exactly that many bytes into a
  ``mktemp`` file (0600, ``umask 077``).
* ``from:``: PHP reads the application's config on the server and writes the same defaults file;
  the password never leaves the server.

Either way the script then opens the file on fd 3 and **unlinks it before the dump starts**; the
dump reads it as ``--defaults-file=/dev/fd/3`` (Linux reopens the unlinked file through ``/proc``).
A trap removes the file if the script dies before that point. So even a SIGKILLed snapshot leaves
no credentials on the server's disk.

``--defaults-file`` (not ``--defaults-extra-file``) is deliberate: with the *extra* file the
client still reads ``~/.my.cnf`` *after* it, and a ``password=`` there would silently win over the
inventory's. The dump tool sees only maintkit's settings; its compiled-in defaults (socket path)
are the distribution's.

The dump: ``--single-transaction --quick`` (consistent InnoDB snapshot, rows streamed, no locks
held), ``--routines --triggers --events`` (the whole schema), ``--hex-blob`` (binary columns as
hex literals, safe through any charset), ``--default-character-set=utf8mb4``,
``--no-tablespaces`` (MySQL 8's dump otherwise needs the PROCESS privilege, which shop users lack),
``--max-allowed-packet=1G`` (large BLOB rows). The database name is given without ``--databases``,
so the dump has no ``CREATE DATABASE``/``USE`` and restores into any database (a drill's scratch
one). Comments stay on: the last line, ``-- Dump completed on …``, is the trailer that
:mod:`maintkit.sources.trailer` checks on the control node.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from maintkit.cms.base import ConfigCms
from maintkit.sources.appconfig import read_db_config_snippet
from maintkit.sources.compression import CompressionChoice, compressor_snippet
from maintkit.sources.script import bash_command, heredoc

DumpTool = Literal["auto", "mariadb-dump", "mysqldump"]

#: options of every dump, in this order, after ``--defaults-file`` (which must come first)
DUMP_OPTIONS: tuple[str, ...] = (
    "--single-transaction",
    "--quick",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--no-tablespaces",
    "--default-character-set=utf8mb4",
    "--max-allowed-packet=1G",
)

#: the client program that goes with each dump tool (same package, same option parser)
CLIENT_FOR: dict[str, str] = {"auto": "auto", "mariadb-dump": "mariadb", "mysqldump": "mysql"}

_NO_NUL = "may not contain a NUL byte"


class DatabaseSource(BaseModel):
    """Which database a snapshot dumps, and how to log in to it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: ConfigCms | None = Field(
        default=None,
        alias="from",
        description="Read the settings from this application's config on the server "
        "(its profile's config file: Magento app/etc/env.php, WordPress wp-config.php, "
        "PrestaShop app/config/parameters.php; docs/cms.md).",
    )
    root: str | None = Field(
        default=None, description="The application's root folder on the server (with 'from')."
    )
    name: str | None = Field(default=None, description="Database name (explicit settings).")
    user: str | None = Field(default=None, description="Database user (explicit settings).")
    password: SecretStr | None = Field(
        default=None, description="Database password; reaches the server over stdin, never a command line."
    )
    host: str = Field(default="localhost", description="Database host; 'localhost' means the Unix socket.")
    port: int = Field(default=3306, ge=1, le=65535, description="TCP port (ignored for the socket).")
    socket: str | None = Field(default=None, description="Unix socket path.")
    dump_tool: DumpTool = Field(
        default="auto", description="Dump program: mariadb-dump where installed, else mysqldump (auto)."
    )

    @field_validator("name", "user", "host", "socket", "root")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\0" in value:
            raise ValueError(_NO_NUL)
        return value

    @field_validator("password")
    @classmethod
    def _password_no_nul(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and "\0" in value.get_secret_value():
            raise ValueError(_NO_NUL)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> DatabaseSource:
        explicit = [k for k in ("name", "user", "password", "socket") if getattr(self, k) is not None]
        if self.from_ is not None:
            if not self.root:
                raise ValueError("'from' needs 'root': the application's folder on the server")
            if explicit:
                raise ValueError(f"give either 'from' or explicit settings, not both ({', '.join(explicit)})")
        else:
            if self.root is not None:
                raise ValueError("'root' is only used with 'from'")
            missing = [k for k in ("name", "user") if not getattr(self, k)]
            if missing:
                raise ValueError(
                    f"missing {' and '.join(missing)} (or use 'from: magento|wordpress|prestashop')"
                )
        return self

    def describe(self) -> str:
        """A one-line description without the password (for messages and the manifest)."""
        if self.from_ is not None:
            return f"{self.from_} config under {self.root}"
        where = self.socket or (self.host if self.host == "localhost" else f"{self.host}:{self.port}")
        return f"{self.name} as {self.user}@{where}"


def option_value(value: str) -> str:
    """Quote ``value`` for a MySQL/MariaDB option file (``key="value"``).

    The client's parser trims spaces, cuts ``#`` comments outside quotes, strips one pair of outer
    quotes, and undoes ``\\\\ \\" \\' \\n \\r \\t \\b``; this is the inverse. NUL cannot be represented.
    """
    if "\0" in value:
        raise ValueError(f"an option value {_NO_NUL}")
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
    )
    return f'"{escaped}"'


def defaults_file(src: DatabaseSource) -> bytes:
    """The ``[client]`` option file for an explicit source (user, password, host, port, socket)."""
    if src.from_ is not None or src.name is None or src.user is None:
        raise ValueError("defaults_file() needs an explicit source")
    lines = ["[client]", f"user={option_value(src.user)}"]
    if src.password is not None:
        lines.append(f"password={option_value(src.password.get_secret_value())}")
    lines.append(f"host={option_value(src.host)}")
    lines.append(f"port={src.port}")
    if src.socket is not None:
        lines.append(f"socket={option_value(src.socket)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _credentials_snippet(src: DatabaseSource) -> tuple[str, bytes]:
    """Bash lines that leave the defaults file on fd 3 (already unlinked) and the database name in
    ``$db``; plus the bytes to send on stdin."""
    head = [
        "umask 077",
        'f=$(mktemp) || { echo "maintkit: cannot create a temporary file in ${TMPDIR:-/tmp}" >&2; exit 1; }',
        "trap 'rm -f \"$f\"' EXIT",
        "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
    ]
    if src.from_ is not None:
        assert src.root is not None
        payload = b""
        body = [*head, read_db_config_snippet(src.from_, src.root)]
    else:
        payload = defaults_file(src)
        n = len(payload)
        body = [
            *head,
            f'head -c {n} > "$f" || {{ echo "maintkit: cannot write the database credentials file in '
            '${TMPDIR:-/tmp} (the error above says why; a full disk?)" >&2; exit 1; }',
            f'[ "$(wc -c < "$f")" -eq {n} ] || '
            '{ echo "maintkit: the database credentials did not arrive on stdin" >&2; exit 1; }',
            f"db={shlex.quote(src.name or '')}",
        ]
    body.append('exec 3<"$f" && rm -f "$f" || exit 1')
    return "\n".join(body), payload


def _tool_snippet(var: str, choice: str, candidates: tuple[str, ...]) -> str:
    """Bash lines that put the first installed program of ``candidates`` (or ``choice``) in $var."""
    names = candidates if choice == "auto" else (choice,)
    tests = " || ".join(f"{{ command -v {n} >/dev/null 2>&1 && {var}={n}; }}" for n in names)
    missing = (
        f"{names[0]} is not installed" if len(names) == 1 else f"neither {' nor '.join(names)} is installed"
    )
    return f'{tests} || {{ echo "maintkit: {missing}" >&2; exit 127; }}'


def dump_command(src: DatabaseSource, compression: CompressionChoice = "auto") -> tuple[str, bytes]:
    """Return ``(command, stdin)`` for a compressed dump of ``src`` written to stdout.

    Send ``stdin`` to the command (``Transport.run(command, stdin=stdin, stdout=sink)``); the
    command itself holds no secret, so it may be shown by ``--check`` and journalled.

    stdout: the compressed dump. stderr, first lines, before any data::

        maintkit:dump_tool=mariadb-dump
        maintkit:dump_version=mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu ...
        maintkit:database=shop
        maintkit:compression=zstd

    then the tools' own messages. Exit status: 0 only when the dump and the compressor both
    succeeded (``pipefail``); 3 when an application's config could not be read; 127 when a
    needed program is missing. Success still needs the trailer check on the control node
    (:class:`~maintkit.sources.trailer.DumpTrailerWatcher`): a dump tool that stops early but
    exits 0 is caught there.
    """
    creds, payload = _credentials_snippet(src)
    body = "\n".join(
        [
            "set -o pipefail",
            creds,
            _tool_snippet("dump", src.dump_tool, ("mariadb-dump", "mysqldump")),
            "printf 'maintkit:dump_tool=%s\\n' \"$dump\" >&2",
            'printf \'maintkit:dump_version=%s\\n\' "$("$dump" --version 2>&1 | head -n 1)" >&2',
            "printf 'maintkit:database=%s\\n' \"$db\" >&2",
            compressor_snippet(compression),
            f'"$dump" --defaults-file=/dev/fd/3 {" ".join(DUMP_OPTIONS)} -- "$db" | "${{zc[@]}}"',
        ]
    )
    return bash_command(body), payload


#: One statement, so InnoDB counts every table in the same read view: the counts agree with each
#: other (not with a dump taken later). Exact ``COUNT(*)``, not information_schema's estimates.
TABLES_SQL = """\
SELECT '#database', DATABASE();
SET SESSION group_concat_max_len = 4294967295;
SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(TABLE_NAME), ', COUNT(*) FROM `',
         REPLACE(TABLE_NAME, '`', '``'), '`') ORDER BY TABLE_NAME SEPARATOR ' UNION ALL ')
  INTO @mk_q FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE';
SET @mk_q = COALESCE(@mk_q, 'SELECT 1, 1 FROM DUAL WHERE FALSE');
PREPARE mk_s FROM @mk_q;
EXECUTE mk_s;
DEALLOCATE PREPARE mk_s;"""


def tables_command(src: DatabaseSource) -> tuple[str, bytes]:
    """Return ``(command, stdin)`` listing the database's base tables with exact row counts.

    stdout is TSV in the client's batch format: a first line ``#database<TAB>NAME``, then
    ``TABLE<TAB>ROWS`` per base table (views excluded), sorted by name; read it with
    :func:`parse_tables`. About 40 bytes a table: a result's 64 KiB stdout tail holds ~1500 tables,
    pass a sink beyond that.

    Consistency: the counts come from one ``UNION ALL`` statement, i.e. one InnoDB read view, so
    they agree with each other; they are taken in their own transaction, before or after the dump,
    not inside the dump's (no client can share another's snapshot). On a quiet shop they equal the
    dump's; on a busy one they are close. The authoritative list of tables *in the dump* is the one
    :class:`~maintkit.sources.trailer.DumpTrailerWatcher` reads from the dump itself.
    """
    creds, payload = _credentials_snippet(src)
    body = "\n".join(
        [
            "set -o pipefail",
            creds,
            _tool_snippet("client", CLIENT_FOR[src.dump_tool], ("mariadb", "mysql")),
            '"$client" --defaults-file=/dev/fd/3 --batch --skip-column-names '
            '--default-character-set=utf8mb4 -e "$(cat '
            + heredoc("MAINTKIT_SQL", TABLES_SQL)
            + '\n)" -- "$db"',
        ]
    )
    return bash_command(body), payload


_BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0", "\\r": "\r"}
_BATCH_RE = re.compile(r"\\[\\tn0r]")


def unescape_batch(value: str) -> str:
    """Undo the escaping of the ``mariadb --batch`` output format."""
    return _BATCH_RE.sub(lambda m: _BATCH_ESCAPES[m.group(0)], value)


@dataclass
class TableListing:
    """The database's name and its base tables with their exact row counts."""

    database: str
    tables: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> Mapping[str, object]:
        return {"database": self.database, "tables": dict(self.tables)}


def parse_tables(stdout: str) -> TableListing:
    """Parse :func:`tables_command` output. Raises ValueError on anything unexpected."""
    lines = [line for line in stdout.split("\n") if line]
    if not lines or not lines[0].startswith("#database\t"):
        raise ValueError("the table listing does not start with the database name")
    listing = TableListing(database=unescape_batch(lines[0].split("\t", 1)[1]))
    for line in lines[1:]:
        name, sep, count = line.rpartition("\t")
        if not sep or not count.isdigit():
            raise ValueError(f"unexpected line in the table listing: {line!r}")
        listing.tables[unescape_batch(name)] = int(count)
    return listing
