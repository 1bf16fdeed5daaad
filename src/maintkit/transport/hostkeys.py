"""Host-key checking for SSH connections: refuse unknown keys unless asked, never accept a changed one.

Why this module exists: fabric's ``Connection`` installs a policy that silently adds any unknown host
key, and it does not even read ``~/.ssh/known_hosts``. For a tool that pulls database dumps and pushes
releases, trusting the first key a network path presents is not acceptable. Here:

* the known keys are read from the user's ``~/.ssh/known_hosts`` plus the inventory's ``known_hosts``
  file (plain and hashed OpenSSH entries);
* an **unknown** key is refused with a :class:`~maintkit.model.problems.HostKeyError` naming the host, the key
  type and its SHA256 fingerprint, and saying how to opt in; with ``accept_new`` (OpenSSH's
  ``StrictHostKeyChecking=accept-new``) it is accepted and appended to a known_hosts file;
* a **changed** key always fails, whatever ``accept_new`` says (paramiko raises
  ``BadHostKeyException``, which :func:`changed_key_error` turns into a ``HostKeyError``).

``HostKeyError`` is deliberately not a ``TransportError``: the engine retries transport errors, and
retrying a refused key can only waste time or, worse, race an attacker.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import paramiko.hostkeys

from maintkit.fsmodes import make_private_dirs
from maintkit.model.problems import HostKeyError

DEFAULT_SSH_PORT = 22
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

# One process-wide lock: hosts of a run connect in parallel threads and may append to the same file.
# (fcntl.flock additionally guards against other processes, e.g. a concurrent `ssh`.)
_append_lock = threading.Lock()


def known_hosts_name(hostname: str, port: int | None) -> str:
    """Return the name OpenSSH writes in known_hosts: ``host`` on port 22, else ``[host]:port``."""
    if port is None or port == DEFAULT_SSH_PORT:
        return hostname
    return f"[{hostname}]:{port}"


def key_line(name: str, key: paramiko.PKey) -> str:
    """Return one known_hosts line (with newline) for ``key`` under the host ``name``."""
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def fingerprint(key: paramiko.PKey) -> str:
    """Return the key's fingerprint as OpenSSH prints it: ``SHA256:`` + unpadded base64."""
    return str(key.fingerprint)


@dataclass
class KnownHosts:
    """The keys of one or more known_hosts files, merged, plus the keys marked ``@revoked``."""

    keys: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    #: (name as written - plain, ``[host]:port`` or hashed -, key) in the order they were recorded
    entries: list[tuple[str, paramiko.PKey]] = field(default_factory=list)
    revoked: list[paramiko.PKey] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return any(r.get_name() == key.get_name() and r.asbytes() == key.asbytes() for r in self.revoked)


_cache: dict[tuple[tuple[str, bytes | None], ...], KnownHosts] = {}
_cache_lock = threading.Lock()


def load_known_hosts(files: Iterable[Path]) -> KnownHosts:
    """The merged keys of ``files``; read once per run while the files stay as they are.

    Why a cache: every host of a fleet reads the same files, and parsing a key is ~0.1 ms: twenty
    hosts with a twenty-line known_hosts file spent 40 ms of start-up on it. The files are still
    read every time and the cache is keyed by their bytes, so a file that changed in any way (a key
    accept-new appended, a key replaced) is parsed again: no stale key is ever trusted.
    """
    paths = list(dict.fromkeys(p.expanduser() for p in files))
    contents = {path: _read(path) for path in paths}
    signature = tuple((str(path), contents[path]) for path in paths)
    with _cache_lock:
        known = _cache.get(signature)
        if known is None:
            known = _cache[signature] = _parse_known_hosts(contents)
        return known


def _read(path: Path) -> bytes | None:
    """The file's bytes; None when it does not exist (an empty list of keys)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts file {path}: {exc}") from exc


def _parse_known_hosts(contents: dict[Path, bytes | None]) -> KnownHosts:
    """Read known_hosts files in order; the first key of a type recorded for a host wins.

    Why not ``paramiko.HostKeys.load``: it aborts the whole file on an ``@cert-authority`` or
    ``@revoked`` line (it parses the marker as a host name), and it would make us lose revocations.
    Hashed (``|1|salt|hash``) and comma-separated names are kept as they are; paramiko matches them.
    A missing file is empty; an unreadable one is a clear error rather than a silent "unknown host".
    """
    known = KnownHosts()
    for path, data in contents.items():
        known.files.append(path)
        if data is None:
            continue
        text = data.decode("utf-8", errors="replace")
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker = ""
            if line.startswith("@"):
                marker, _, line = line.partition(" ")
                line = line.strip()
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
            except Exception:  # a malformed line is skipped, as OpenSSH does
                entry = None
            if entry is None or entry.key is None:
                continue
            if marker == "@revoked":
                known.revoked.append(entry.key)
                continue
            if marker:  # @cert-authority: host certificates are not supported by paramiko
                continue
            for name in entry.hostnames:
                recorded = known.keys.lookup(name)
                if recorded is None or entry.key.get_name() not in recorded:
                    known.keys.add(name, entry.key.get_name(), entry.key)
                    known.entries.append((name, entry.key))
    return known


def _read_known_hosts(path: Path) -> paramiko.HostKeys:
    return load_known_hosts([path]).keys


def append_known_host(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append ``name key`` to the known_hosts file ``path`` in OpenSSH format.

    Creates the directory (0700) and the file (0600) when missing, as OpenSSH does. Under a lock the
    file is re-read first: when another thread or process added the same key meanwhile nothing is
    written; when it added a *different* key of the same type the connection is refused.
    """
    path = path.expanduser()
    with _append_lock:
        make_private_dirs(path.parent)  # 0700 whatever the umask, parents too
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                current = _read_known_hosts(path)
                if current.check(name, key):
                    return
                existing = current.lookup(name)
                if existing is not None and key.get_name() in existing:
                    raise HostKeyError(
                        f"host key for {name} was added to {path} by someone else while connecting, and "
                        f"it differs from the key the server presented ({key.get_name()} "
                        f"{fingerprint(key)}); refusing to connect"
                    )
                size = os.fstat(fh.fileno()).st_size
                prefix = b""
                if size:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        prefix = b"\n"
                fh.write(prefix + key_line(name, key).encode("ascii"))
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def unknown_key_message(label: str, name: str, key: paramiko.PKey, save_to: Path) -> str:
    """Explain a refused unknown key, and the three ways to trust it on purpose."""
    host, _, port = name.removeprefix("[").partition("]:")
    port_opt = f"-p {port} " if port else ""
    return (
        f"host key of {label} is unknown: {key.get_name()} {fingerprint(key)}. "
        f"Refusing to connect to an unverified host. If this fingerprint is the server's "
        f"(check on the server: ssh-keygen -lf /etc/ssh/ssh_host_{_key_file_kind(key)}_key.pub), "
        f"either run again with --accept-new-host-keys, set `accept_new_host_keys: true` for the host "
        f"in the inventory, or add it beforehand: ssh-keyscan {port_opt}{host} >> {save_to}"
    )


def _key_file_kind(key: paramiko.PKey) -> str:
    kind = key.get_name()
    if kind.startswith("ecdsa"):
        return "ecdsa"
    return kind.removeprefix("ssh-")


def changed_key_error(
    label: str, name: str, exc: paramiko.BadHostKeyException, files: Sequence[Path]
) -> HostKeyError:
    """Turn paramiko's BadHostKeyException into a HostKeyError that says what to check and do."""
    got, expected = exc.key, exc.expected_key
    holding = [f for f in files if _read_known_hosts(f).lookup(name) is not None] or list(files)
    where = ", ".join(str(f) for f in holding)
    return HostKeyError(
        f"HOST KEY CHANGED for {label}: the server presented {got.get_name()} {fingerprint(got)}, "
        f"but {where} records {expected.get_name()} {fingerprint(expected)}. Someone may be "
        f"intercepting the connection, or the server was reinstalled. Refusing to connect "
        f"(--accept-new-host-keys never overrides a changed key). If the change is expected, remove "
        f"the old entry (ssh-keygen -R '{name}' -f {holding[0]}) and accept the new key."
    )


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """What to do with a key that no known_hosts file mentions: refuse it, or (accept-new) record it.

    paramiko calls :meth:`missing_host_key` only for hosts with *no* known key; a host whose known key
    differs never reaches this policy (paramiko raises ``BadHostKeyException`` itself).
    """

    def __init__(self, *, label: str, accept_new: bool, save_to: Path) -> None:
        self.label = label
        self.accept_new = accept_new
        self.save_to = save_to

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise HostKeyError(unknown_key_message(self.label, hostname, key, self.save_to))
        append_known_host(self.save_to, hostname, key)
        # Also remember it in memory, so a reconnect of the same client needs no second write.
        client.get_host_keys().add(hostname, key.get_name(), key)


def secure_client(
    client: paramiko.SSHClient,
    *,
    label: str,
    known: KnownHosts,
    accept_new: bool,
    save_to: Path,
) -> None:
    """Give ``client`` our known keys and replace its missing-key policy (fabric's adds any key) with ours.

    All keys go into the client's own key set (``get_host_keys``); its "system" set stays empty, so
    paramiko checks exactly one merged set and an entry in one file cannot hide another file's.
    """
    keys = client.get_host_keys()
    keys.clear()
    for name, key in known.entries:
        keys.add(name, key.get_name(), key)
    client.set_missing_host_key_policy(KnownHostsPolicy(label=label, accept_new=accept_new, save_to=save_to))


def check_not_revoked(label: str, key: paramiko.PKey, known: KnownHosts) -> None:
    """Refuse a server key listed under ``@revoked`` in a known_hosts file, as OpenSSH does."""
    if known.is_revoked(key):
        raise HostKeyError(
            f"host key of {label} ({key.get_name()} {fingerprint(key)}) is marked @revoked in "
            f"{', '.join(str(f) for f in known.files)}; refusing to connect"
        )
