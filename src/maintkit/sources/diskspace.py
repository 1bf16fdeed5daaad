"""How full the host's disks are: the filesystems of the site's folder and of its database.

Why read it during the snapshot: the snapshot already logs in every night and already knows where
the files really are (their identity: the real path) and which server holds the database (its
``@@hostname`` and ``@@datadir``), so one ``df`` more gives the disk trend a point a night at no
extra connection. A full disk is the most common way a shop stops taking orders (logs, sessions,
a backup left in the web root), and it is seen coming weeks ahead.

The database's filesystem is read only when the server runs on this host (its ``@@hostname`` is
the host's ``uname -n``) and ``df`` can reach its data directory: a remote server's datadir path
on this host would be another disk. A reading that fails is left out, never an error: free space
is a trend's input, not a condition of the backup.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from maintkit.sources.identity import SourceIdentity
from maintkit.sources.script import bash_command


@dataclass(frozen=True)
class DiskReading:
    """One filesystem: whose (``files`` / ``database``), the path asked for, its mount, sizes."""

    what: str
    path: str
    mount: str
    total: int
    free: int

    def as_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "path": self.path,
            "mount": self.mount,
            "total": self.total,
            "free": self.free,
        }


def disk_command(paths: list[tuple[str, str]]) -> str:
    """``node=NAME`` then ``disk=WHAT<TAB>df's last line`` per (what, absolute path); rc 0 always."""
    lines = ['printf "node=%s\\n" "$(uname -n)"']
    for what, path in paths:
        lines.append(
            f"out=$(LC_ALL=C df -P -B1 -- {shlex.quote(path)} 2>/dev/null) "
            f'&& printf "disk=%s\\t%s\\n" {shlex.quote(what)} "${{out##*$\'\\n\'}}"'
        )
    lines.append("exit 0")
    return bash_command("\n".join(lines))


def disk_paths(identity: SourceIdentity | None) -> list[tuple[str, str]]:
    """What to read for a snapshot's source: its files' real path, the database's data directory."""
    paths = []
    if identity and identity.files and identity.files.real_path:
        paths.append(("files", identity.files.real_path))
    if identity and identity.database and identity.database.datadir:
        paths.append(("database", identity.database.datadir))
    return paths


def parse_disk(stdout: str, identity: SourceIdentity | None) -> list[DiskReading]:
    """The readings ``disk_command`` printed; the database's only when its server is this host."""
    node = ""
    asked = dict(disk_paths(identity))
    found = []
    for line in stdout.splitlines():
        if line.startswith("node="):
            node = line[5:].strip()
        elif line.startswith("disk="):
            what, _, df_line = line[5:].partition("\t")
            fields = df_line.split(None, 5)  # Filesystem 1-blocks Used Available Capacity Mounted-on
            if len(fields) == 6 and fields[1].isdigit() and fields[3].isdigit() and what in asked:
                found.append(DiskReading(what, asked[what], fields[5], int(fields[1]), int(fields[3])))
    server = identity.database.hostname.lower() if identity and identity.database else ""
    return [r for r in found if r.what != "database" or (node and node.lower() == server)]
