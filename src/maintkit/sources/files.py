"""What a files snapshot reads: paths under a root, minus excludes, as a compressed tar stream.

Exclude patterns follow gitignore's rule of thumb: a pattern **with** a slash is anchored at the
root (``var/cache`` is ``ROOT/var/cache`` only, never ``vendor/x/var/cache``); a pattern
**without** one matches at any depth (``*.log``, ``.git``). ``*`` and ``?`` do not cross ``/`` in
anchored patterns. A leading ``/`` anchors explicitly, a trailing ``/`` is ignored. GNU tar is
required on the server (``--anchored``, ``--exclude``; every Linux distribution ships it).

The CMS default excludes are caches that the application rebuilds. For Magento, ``generated`` and
``pub/static`` lose their generated *contents* but keep the ``.htaccess`` files that ship with
Magento (a restored shop without ``pub/static/.htaccess`` serves no static files).

Exit status (decided here, see :func:`tar_command`): GNU tar exits 1 when a file changed while it
was read (a log being appended, a cache being written). On a live shop that is normal and the
archive is still valid, so it counts as success, reported on stderr as
``maintkit:warning=files-changed``. Anything worse (a missing path, an unreadable file: exit 2), or
a failing compressor, fails the command: a backup that silently misses files is worse than a
failed one.
"""

from __future__ import annotations

import posixpath
import shlex

from pydantic import BaseModel, ConfigDict, Field, field_validator

from maintkit.cms.base import CmsName, get
from maintkit.sources.compression import CompressionChoice, compressor_snippet
from maintkit.sources.script import bash_command, host_path


def _clean_relative(path: str, what: str) -> str:
    if "\0" in path:
        raise ValueError(f"{what} may not contain a NUL byte")
    if path.startswith("/"):
        raise ValueError(f"{what} {path!r} must be relative to the root")
    norm = posixpath.normpath(path) if path else "."
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"{what} {path!r} leaves the root")
    return norm


class FilesSource(BaseModel):
    """Which files a snapshot archives."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Folder on the server the paths are relative to ('~/' is the home).")
    paths: list[str] = Field(
        default_factory=lambda: ["."], description="Paths under root to archive (default: all of it)."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns to leave out; with a '/' anchored at root, without one at any depth.",
    )
    cms: CmsName = Field(
        default="none", description="Also exclude this application's caches (its profile's excludes)."
    )

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value or "\0" in value:
            raise ValueError("root must be a non-empty path without NUL bytes")
        return value

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("paths may not be empty (use '.' for the whole root)")
        return [_clean_relative(p, "path") for p in value]

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip("/") or "\0" in pattern or "\n" in pattern:
                raise ValueError(f"invalid exclude pattern {pattern!r}")
        return value

    def all_excludes(self) -> list[str]:
        """The user's patterns followed by the CMS profile's (caches it rebuilds)."""
        return [*self.exclude, *get(self.cms).excludes]


def exclude_options(patterns: list[str]) -> list[str]:
    """GNU tar options for ``patterns`` (see the module docstring for their meaning).

    Member names start with ``./`` when a path is ``.`` and without it otherwise, so every anchored
    pattern is given in both forms.
    """
    anchored: list[str] = []
    floating: list[str] = []
    for raw in patterns:
        pattern = raw.rstrip("/")
        if "/" in pattern:
            pattern = pattern.lstrip("/")
            pattern = pattern[2:] if pattern.startswith("./") else pattern
            anchored += [f"--exclude={pattern}", f"--exclude=./{pattern}"]
        else:
            floating.append(f"--exclude={pattern}")
    opts: list[str] = []
    if anchored:
        opts += ["--anchored", "--no-wildcards-match-slash", *anchored]
    if floating:
        opts += ["--no-anchored", "--wildcards-match-slash", *floating]
    return opts


def tar_command(src: FilesSource, compression: CompressionChoice = "auto") -> str:
    """Return a command writing a compressed tar of ``src`` to stdout.

    stderr starts with ``maintkit:compression=zstd|gzip``; ``maintkit:warning=files-changed``
    follows when tar reported files changing under it. Exit status: 0 (or tar's 1, see the
    module docstring), else tar's status (2: missing path, unreadable file) or the compressor's.
    Names are stored as given (``./x`` for the path ``.``); extract with ``tar -C DEST -xf -``.
    """
    paths = [p if not p.startswith("-") else f"./{p}" for p in src.paths]
    args = [*exclude_options(src.all_excludes()), "-c", "-f", "-", "--", *paths]
    body = "\n".join(
        [
            compressor_snippet(compression),
            f"tar_root={host_path(src.root)}",
            f'tar -C "$tar_root" {shlex.join(args)} | "${{zc[@]}}"',
            'st=("${PIPESTATUS[@]}")',
            'if [ "${st[1]}" -ne 0 ]; then',
            '  echo "maintkit: $comp failed (exit ${st[1]})" >&2; exit "${st[1]}"',
            "fi",
            'if [ "${st[0]}" -eq 1 ]; then echo "maintkit:warning=files-changed" >&2; exit 0; fi',
            'exit "${st[0]}"',
        ]
    )
    return bash_command(body)
