"""What a database and a files root *are* on their host, asked of the host itself, and when two are one.

Why not compare what the inventories say: ``localhost``, ``127.0.0.1``, the host's public address
and the socket are four spellings of one server, a ``database: {from: magento}`` setting names no
database at all until the application's config is read, and a symlinked folder is another
folder's spelling. So the identity is resolved where it is true:

* **database**: the restore's own credentials path (explicit settings, or the application's config
  read by PHP on the host) logs in and asks the server for its ``@@hostname``, ``@@datadir``,
  ``@@port``, ``@@socket`` (and ``server_uuid`` where the server has one: MySQL); the database is the
  name the restore writes to. Two identities are the same server when their ``server_uuid`` match
  (both known), else when hostname and datadir match: however the client reached it (TCP to any
  address, the socket), a server answers with the same facts. Two instances that share a hostname
  and a datadir cannot exist on one machine; two machines configured alike (same hostname, same
  datadir) count as one: refusing is the safe mistake. Members of one replication cluster (Galera,
  Group Replication) count as one server: what is written into one is written into all. Database
  names compare case-insensitively (``lower_case_table_names``), again the safe mistake.
* **files**: the real path of the root (``readlink -f``; for a root that does not exist yet, of its
  nearest existing parent plus the rest), the folder's ``DEV:INODE`` when it exists (a bind mount
  is another path to the same inode), and the machine (``/etc/machine-id``, else its hostname).
  Two roots on one machine collide when one real path is the other's or contains it: swapping a
  folder replaces everything inside it.

The snapshot records its source's identity in the manifest (``identity``); a restore resolves its
target's and compares (:mod:`maintkit.jobs.restore.guard`).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from maintkit.sources.database import (
    CLIENT_FOR,
    TABLES_SQL,
    DatabaseSource,
    TableListing,
    _credentials_snippet,
    _tool_snippet,
    parse_tables,
    unescape_batch,
)
from maintkit.sources.script import bash_command, heredoc, host_path, parse_pairs

#: Asked of the server through the restore's (or snapshot's) own login. ``@mk_db`` is the database
#: the operation works on (from the settings or the application's config); no privilege is needed.
IDENTITY_SQL = """\
SELECT '#identity', @@hostname, @@port, IFNULL(@@socket, ''), @@datadir, @mk_db;
SHOW GLOBAL VARIABLES LIKE 'server\\_uuid';
SHOW GLOBAL STATUS LIKE 'wsrep\\_cluster\\_state\\_uuid';
SHOW GLOBAL VARIABLES LIKE 'group\\_replication\\_group\\_name';"""


@dataclass(frozen=True)
class DatabaseIdentity:
    """One database on one server, as the server describes itself."""

    name: str
    hostname: str
    datadir: str
    port: int | None = None
    socket: str = ""
    server_uuid: str = ""
    #: the replication cluster the server is a member of (Galera's cluster state uuid, MySQL Group
    #: Replication's group name): its members share their data, so they count as one server
    cluster: str = ""

    def server(self) -> str:
        """The server, for messages: ``HOSTNAME:PORT (datadir D[, uuid U])``."""
        uuid = f", uuid {self.server_uuid}" if self.server_uuid else ""
        cluster = f", cluster {self.cluster}" if self.cluster else ""
        return f"{self.hostname}:{self.port} (datadir {self.datadir}{uuid}{cluster})"

    def describe(self) -> str:
        return f"{self.name} on {self.server()}"


@dataclass(frozen=True)
class FilesIdentity:
    """One folder on one machine."""

    machine: str
    real_path: str
    inode: str = ""  # "DEV:INODE" of the folder itself, when it exists

    def describe(self) -> str:
        return f"{self.real_path} on machine {self.machine[:12]}"


@dataclass(frozen=True)
class SourceIdentity:
    """What a snapshot read, as recorded in its manifest (either part may be missing)."""

    database: DatabaseIdentity | None = None
    files: FilesIdentity | None = None


def same_server(a: DatabaseIdentity, b: DatabaseIdentity) -> bool:
    if a.cluster and a.cluster == b.cluster:
        return True  # writing into one member writes into all of them
    if a.server_uuid and b.server_uuid:
        return a.server_uuid == b.server_uuid
    return (a.hostname.lower(), _dir(a.datadir)) == (b.hostname.lower(), _dir(b.datadir))


def same_database(a: DatabaseIdentity, b: DatabaseIdentity) -> bool:
    """One database on one server (names compared case-insensitively: the safe mistake)."""
    return same_server(a, b) and a.name.lower() == b.name.lower()


def folder_overlap(target: FilesIdentity, source: FilesIdentity) -> str | None:
    """How the target folder collides with the source's ("is", "is inside", "contains"), or None."""
    if target.machine != source.machine:
        return None
    t, s = _dir(target.real_path), _dir(source.real_path)
    if t == s or (target.inode and target.inode == source.inode):
        return "is"
    if t.startswith(s.rstrip("/") + "/"):
        return "is inside"
    if s.startswith(t.rstrip("/") + "/"):
        return "contains"
    return None


def _dir(path: str) -> str:
    return posixpath.normpath(path) if path else ""


# -- the host commands -------------------------------------------------------------------------------


def database_identity_command(src: DatabaseSource) -> tuple[str, bytes]:
    """Return ``(command, stdin)`` printing the identity of ``src``'s database (read-only).

    Credentials travel as for a dump (:mod:`maintkit.sources.database`); the database need not
    exist yet (the client selects none). Parse with :func:`parse_database_identity`.
    """
    return _client_session(src, IDENTITY_SQL, select=False)


def identity_and_tables_command(src: DatabaseSource) -> tuple[str, bytes]:
    """Return ``(command, stdin)`` printing the database's identity, then its tables and exact row
    counts (:func:`~maintkit.sources.database.tables_command`'s output), in one client session.

    Why one: a snapshot asks both before its dump, and each question was a login of its own
    (a channel, a shell, a credentials file, a client and a server connection: ~12 ms of the host's
    CPU, which a fleet of small sites pays hundreds of times a night). The database must exist (it
    is selected); parse with :func:`parse_identity_and_tables`.
    """
    return _client_session(src, IDENTITY_SQL + "\n" + TABLES_SQL, select=True)


def _client_session(src: DatabaseSource, sql: str, *, select: bool) -> tuple[str, bytes]:
    """``sql`` through the database client, ``@mk_db`` set to the database's name (selected too
    when ``select``), the credentials on stdin."""
    creds, payload = _credentials_snippet(src)
    body = "\n".join(
        [
            "set -o pipefail",
            creds,
            _tool_snippet("client", CLIENT_FOR[src.dump_tool], ("mariadb", "mysql")),
            "hex=$(printf '%s' \"$db\" | od -An -v -tx1 | tr -d ' \\n')",
            '{ printf "SET @mk_db = _utf8mb4 X\'%s\';\\n" "$hex"; cat '
            + heredoc("MAINTKIT_SQL", sql)
            + '\n} | "$client" --defaults-file=/dev/fd/3 --batch --skip-column-names '
            + "--default-character-set=utf8mb4"
            + (' -- "$db"' if select else ""),
        ]
    )
    return bash_command(body), payload


def parse_identity_and_tables(stdout: str) -> tuple[DatabaseIdentity, TableListing]:
    """Parse :func:`identity_and_tables_command` output. Raises ValueError on anything unexpected."""
    lines = stdout.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("#database\t")), None)
    if start is None:
        raise ValueError("the table listing does not start with the database name")
    return parse_database_identity("\n".join(lines[:start])), parse_tables("\n".join(lines[start:]))


def parse_database_identity(stdout: str) -> DatabaseIdentity:
    """Parse :func:`database_identity_command` output. Raises ValueError on anything unexpected."""
    facts: list[str] | None = None
    uuid = cluster = ""
    for line in stdout.split("\n"):
        values = [unescape_batch(v) for v in line.split("\t")]
        if values[0] == "#identity" and len(values) == 6:
            facts = values[1:]
        elif len(values) == 2 and values[0].lower() == "server_uuid":
            uuid = values[1].strip()
        elif len(values) == 2 and values[0].lower() in _CLUSTER_NAMES and values[1].strip():
            cluster = f"{values[0].lower()}:{values[1].strip()}"
    if facts is None:
        raise ValueError("the database server did not describe itself")
    hostname, port, socket, datadir, name = facts
    if not hostname or not datadir:
        raise ValueError("the database server did not name its hostname and datadir")
    return DatabaseIdentity(
        name=name,
        hostname=hostname,
        datadir=datadir,
        port=int(port) if port.isdigit() else None,
        socket=socket,
        server_uuid=uuid,
        cluster=cluster,
    )


_CLUSTER_NAMES = ("wsrep_cluster_state_uuid", "group_replication_group_name")


FILES_IDENTITY_BODY = """\
case "$root" in ?*/) root=${root%/};; esac
mid=$(cat /etc/machine-id 2>/dev/null); [ -n "$mid" ] || mid=$(hostname)
p=$root; rest=
while [ ! -e "$p" ] && [ ! -L "$p" ]; do
  rest="/$(basename -- "$p")$rest"; p=$(dirname -- "$p")
done
real=$(readlink -f -- "$p") || { echo "maintkit: cannot resolve $p" >&2; exit 1; }
real="${real%/}$rest"; [ -n "$real" ] || real=/
echo "machine=$mid"
echo "real_hex=$(printf '%s' "$real" | od -An -v -tx1 | tr -d ' \\n')"
if [ -z "$rest" ]; then echo "inode=$(stat -L -c '%d:%i' -- "$p" 2>/dev/null)"; fi
exit 0"""


def files_identity_command(root: str) -> str:
    """A read-only command printing the machine, the real path of ``root`` (hex) and its inode."""
    return bash_command(f"root={host_path(root)}\n{FILES_IDENTITY_BODY}")


def parse_files_identity(stdout: str) -> FilesIdentity:
    """Parse :func:`files_identity_command` output. Raises ValueError on anything unexpected."""
    values = parse_pairs(stdout)
    machine, real = values.get("machine", "").strip(), values.get("real_hex", "")
    if not machine or not real:
        raise ValueError("the host did not describe the folder")
    return FilesIdentity(machine, bytes.fromhex(real).decode("utf-8", "replace"), values.get("inode", ""))
