"""The per-file SHA-256 list of a site's code folders, computed on the host (the integrity watch).

Two ways to run it:

* on its own (:func:`hash_list_command`, the ``integrity`` action): ``find`` every regular file but
  the excluded ones, sorted, then ``sha256sum`` them, NUL-safe;
* **while the snapshot's tar streams** (:func:`start_command` / :func:`collect_command`): the same
  pipeline is started detached on the host, writing into a private temporary file, just before the
  archive's command; once the archive is stored, the list is read back (and the file removed). Why
  on the host and concurrently: the files are read by tar at the same moment (the page cache
  serves the second read), the archive's stream is bound by compression and the SSH channel, not
  by the host's second core, and the control node, which carries hundreds of sites, does no extra
  work (benchmarks/integrity_hashing.py measured the options; docs/performance.md). It also works
  whatever carries the files (tar or the restic engine).

Only paths and hashes leave the host, never the files. Media, caches and generated code are left
out by default: they change every day by design.
"""

from __future__ import annotations

import re
import shlex

from maintkit.sources.script import bash_command, host_path, parse_pairs

#: what changes by design: uploaded media, caches, generated code, logs, sessions
DEFAULT_EXCLUDE = [
    "./pub/media/*",
    "./pub/static/*",
    "./var/*",
    "./generated/*",
    "./wp-content/uploads/*",
    "./wp-content/cache/*",
    "./img/*",
    "./cache/*",
    "./.git/*",
    "./.maintkit*",
]
LINE = re.compile(r"^([0-9a-f]{64})  \./(.+)$")
#: the most a hash list read back may hold (bytes): ~2.5 million files
MAX_LIST_BYTES = 256 * 1024 * 1024


def _pipeline(exclude: list[str]) -> str:
    """A folder's pattern (``./pub/media/*``) prunes the folder: ``find`` never walks its files (a
    shop's media are millions of them); other patterns filter the files found."""
    folders = [p[:-2] for p in exclude if p.endswith("/*") and not any(c in p[:-2] for c in "*?[")]
    others = [p for p in exclude if p[:-2] not in folders or not p.endswith("/*")]
    prune = " -o ".join(f"-path {shlex.quote(folder)}" for folder in folders)
    head = f"find . \\( {prune} \\) -prune -o" if folders else "find ."
    keep = "".join(f" ! -path {shlex.quote(pattern)}" for pattern in others)
    return f"{head} -type f{keep} -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum --"


def hash_list_command(root: str, exclude: list[str]) -> str:
    """The list on stdout, in one command (every value quoted)."""
    return f"cd {host_path(root)} && {_pipeline(exclude)}"


def start_command(root: str, exclude: list[str]) -> str:
    """Start the list detached on the host; print ``list=PATH`` and ``pid=PID`` and return at once.

    The list goes to ``PATH`` (``mktemp``, 0600), its exit status to ``PATH.done`` when complete.
    The hasher runs in its own session (``setsid``) with every descriptor closed, so the SSH
    channel of this command ends now and :func:`cleanup_command` can stop the whole group.
    """
    inner = (
        f'set -o pipefail; {_pipeline(exclude)} > "$1" 2>/dev/null; st=$?; '
        'echo "$st" > "$1.part" && mv -f "$1.part" "$1.done"'
    )
    body = "\n".join(
        [
            f"cd {host_path(root)} || exit 1",
            'list=$(mktemp "${TMPDIR:-/tmp}/maintkit-hashes.XXXXXXXX") || exit 1',
            f'setsid bash -c {shlex.quote(inner)} _ "$list" </dev/null >/dev/null 2>&1 &',
            'echo "list=$list"',
            'echo "pid=$!"',
        ]
    )
    return bash_command(body)


def parse_started(stdout: str) -> tuple[str, int] | None:
    """``(PATH, PID)`` from :func:`start_command`'s output, None when it did not start."""
    values = parse_pairs(stdout)
    path, pid = values.get("list", ""), values.get("pid", "")
    return (path, int(pid)) if path.startswith("/") and pid.isdigit() else None


def collect_command(path: str, wait_seconds: float) -> str:
    """Wait (at most ``wait_seconds``) for the list to be complete, print it, remove it.

    stderr says ``maintkit:hashes=STATUS`` (the pipeline's exit status, ``timeout`` when it did not
    finish in time); stdout is the list.
    """
    checks = max(1, int(wait_seconds * 10))
    body = "\n".join(
        [
            f"list={shlex.quote(path)}",
            f'for _ in $(seq {checks}); do [ -e "$list.done" ] && break; sleep 0.1; done',
            'if [ ! -e "$list.done" ]; then echo "maintkit:hashes=timeout" >&2; exit 1; fi',
            'echo "maintkit:hashes=$(cat "$list.done")" >&2',
            'cat "$list"',
            'rm -f "$list" "$list.done"',
        ]
    )
    return bash_command(body)


def cleanup_command(path: str, pid: int) -> str:
    """Stop the hasher's session (when the snapshot failed or the list was late) and remove its files."""
    body = "\n".join(
        [
            f"kill -TERM -- -{int(pid)} 2>/dev/null",
            f"list={shlex.quote(path)}",
            'rm -f "$list" "$list.part" "$list.done"',
            "exit 0",
        ]
    )
    return bash_command(body)


def parse_hashes(text: str) -> dict[str, str]:
    """``sha256sum`` output -> relative path -> hash (names with a newline are left out: escaped)."""
    files = {}
    for line in text.splitlines():
        found = LINE.match(line)
        if found:
            files[found.group(2)] = found.group(1)
    return files


class ListSink:
    """Every byte of a hash list (a command's result keeps only a bounded tail), up to a limit."""

    def __init__(self, limit: int = MAX_LIST_BYTES) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def write(self, data: bytes, /) -> int:
        room = self.limit - len(self.data)
        if len(data) > room:
            self.truncated = True
        self.data += data[: max(room, 0)]
        return len(data)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")
