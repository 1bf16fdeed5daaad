"""A restic repository's snapshots read straight from its storage, without running restic.

Why: even with the light key (:mod:`maintkit.storage.restickey`) a restic run on the control node
costs ~0.25 s: the process, an rclone for an S3 target, and the 200 ms restic waits after taking
its lock. A night ran one only to read back the snapshot the host had just made (its tree id goes
into the manifest), and retention one more to list them all; on an unchanged 1 GB tree that was
14 % of the whole night (docs/performance.md). What both need is a few small objects the control
node can read itself, with the target's own access: a key file and one file per snapshot.

The format, from restic's design document ("Repository Format", "Keys, Encryption and MAC"):

- every object but the key files and ``config`` is IV || AES-256-CTR(plaintext) || Poly1305-AES
  MAC, under the master key's ``encrypt``, ``mac.k`` and ``mac.r``; its name is the SHA-256 of its
  bytes;
- in repository format 2 a plaintext that starts with the byte 2 is that byte and a zstd frame; one
  that starts with ``{`` or ``[`` is plain JSON (format 1, or an object restic chose not to compress).

Checked as restic checks them: a name that is not the hash of the object's bytes, or a MAC that
does not verify, is an error naming the object, never a snapshot taken on trust.

Only for repositories whose key is maintkit's light one: opening restic's calibrated key takes the
same scrypt work in Python as in restic, so a repository with a human's password is listed by
restic (:class:`~maintkit.storage.restic.Repository`), as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zstandard

from maintkit.model.problems import MaintkitError
from maintkit.storage.base import Target
from maintkit.storage.restickey import (
    IV_BYTES,
    LIGHT_N,
    LIGHT_P,
    LIGHT_R,
    MAC_BYTES,
    KeyFileError,
    aes_ctr,
    key_params,
    open_key_file,
    poly1305_aes,
)

#: an object whose plaintext starts with this byte is compressed (restic repository format 2)
COMPRESSED = 2
#: the name of an object: the SHA-256 of its bytes (anything else in the folder is not restic's)
OBJECT_ID = re.compile(r"[0-9a-f]{64}")
#: objects read at once from a target (an S3 GET each)
READERS = 8


class RepositoryReadError(MaintkitError):
    """An object of the repository that is not what restic would have written (damaged, altered)."""


class RepositoryReader:
    """One repository (``key`` in ``target``), opened with its master key; see the module's docstring."""

    def __init__(self, target: Target, key: str, master: dict[str, Any]) -> None:
        self.target = target
        self.key = key
        try:
            self._encrypt = base64.b64decode(master["encrypt"])
            self._mac_k = base64.b64decode(master["mac"]["k"])
            self._mac_r = base64.b64decode(master["mac"]["r"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RepositoryReadError(f"{target.name}:{key}: not a restic master key ({exc})") from None

    @classmethod
    def open(cls, target: Target, key: str, password: str) -> RepositoryReader | None:
        """The repository opened through its light key; None when it has none (restic must read it)."""
        for name, _, _ in target.list_keys(f"{key}/keys/"):
            raw = target.get_bytes(name)
            try:
                if key_params(raw) != (LIGHT_N, LIGHT_R, LIGHT_P):
                    continue
                return cls(target, key, open_key_file(password, raw))
            except (KeyFileError, ValueError, KeyError, TypeError):
                continue  # another password's key, or not a key file: the next one may open
        return None

    def decrypt(self, name: str, raw: bytes) -> bytes:
        """The plaintext of the object ``name`` (its full id) whose bytes are ``raw``, checked."""
        if hashlib.sha256(raw).hexdigest() != name:
            raise RepositoryReadError(f"{self.target.name}:{self.key}: {name} does not hash to its name")
        if len(raw) < IV_BYTES + MAC_BYTES:
            raise RepositoryReadError(f"{self.target.name}:{self.key}: {name} is too short")
        iv, ciphertext, tag = raw[:IV_BYTES], raw[IV_BYTES:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(poly1305_aes(ciphertext, iv, self._mac_k, self._mac_r), tag):
            raise RepositoryReadError(f"{self.target.name}:{self.key}: {name} fails its MAC")
        plain = aes_ctr(self._encrypt, iv, ciphertext)
        if plain[:1] == bytes([COMPRESSED]):
            return zstandard.ZstdDecompressor().decompressobj().decompress(plain[1:])
        return plain

    def snapshot_names(self, prefix: str = "") -> list[str]:
        """The full ids of the snapshots whose id starts with ``prefix`` (all: ``""``)."""
        folder = f"{self.key}/snapshots/"
        names = (name[len(folder) :] for name, _, _ in self.target.list_keys(folder + prefix))
        return [name for name in names if OBJECT_ID.fullmatch(name)]  # as restic: no temporary files

    def snapshot(self, name: str) -> dict[str, Any]:
        """The snapshot ``name`` as ``restic snapshots --json`` shows it (with ``id`` and ``short_id``)."""
        raw = self.target.get_bytes(f"{self.key}/snapshots/{name}")
        try:
            found: dict[str, Any] = json.loads(self.decrypt(name, raw))
        except (ValueError, zstandard.ZstdError) as exc:
            raise RepositoryReadError(f"{self.target.name}:{self.key}: snapshot {name}: {exc}") from None
        return {**found, "id": name, "short_id": name[:8]}

    def snapshots(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """The snapshots ``names`` (all of them: None), oldest first, as restic lists them."""
        wanted = self.snapshot_names() if names is None else names
        if len(wanted) <= 1:
            found = [self.snapshot(name) for name in wanted]
        else:
            with ThreadPoolExecutor(max_workers=min(READERS, len(wanted))) as pool:
                found = list(pool.map(self.snapshot, wanted))
        return sorted(found, key=lambda s: str(s.get("time", "")))
