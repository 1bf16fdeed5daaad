"""A light restic repository key for maintkit's own random passwords: one scrypt of ~10 ms, not ~0.7 s.

Why: when restic makes a repository it tunes scrypt so that opening it takes about half a second
(here N=32768, r=8, p=7: 0.45 CPU-s and 0.68 s for every restic command). That work protects a
password a human chose against guessing. A maintkit repository's password is 32 random bytes
(:func:`~maintkit.storage.restic.ensure_password_file`): there is nothing to guess, so the work buys
nothing, yet every restic run pays it: the host's backup, the control node's listing, copy, forget,
prune, check and restore. An unchanged night was mostly that (docs/performance.md).

How, and why it cannot lock a repository:

- restic's documented key format (restic's design document, "Keys, Encryption and MAC"): a JSON
  file with ``kdf``, ``N``, ``r``, ``p``, ``salt`` and ``data`` = IV || AES-256-CTR(master key JSON)
  || Poly1305-AES MAC of the ciphertext, under the user key scrypt(password, salt, N, r, p) of 64
  bytes: 32 bytes of AES key, then the MAC key's ``k`` (16) and ``r`` (16). The file's name is the
  SHA-256 of its bytes. The ``cryptography`` package does the AES and Poly1305.
- the master key is read with restic itself (``restic cat masterkey``), once per repository.
- the new key file is first opened again here (its MAC must check), then written beside the
  calibrated one; restic must open the repository with it (``--key-hint``) and name it as the key
  in use (``key list``) before restic itself removes the calibrated key (``key remove``: restic
  refuses to remove the key in use). Any failure on the way leaves the calibrated key in place:
  slower, never locked out.
- only for passwords in maintkit's own format (43 characters of url-safe base64); a repository
  whose password a human wrote into the password file keeps restic's calibrated key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

from maintkit.model.problems import MaintkitError
from maintkit.storage.base import Target
from maintkit.storage.restic import Repository, read_password

#: scrypt parameters of the light key: 4 MiB of memory, ~10 ms (restic takes any N > 1, even)
LIGHT_N, LIGHT_R, LIGHT_P = 4096, 8, 1
#: a password :func:`~maintkit.storage.restic.ensure_password_file` made: 32 random bytes, base64url
RANDOM_PASSWORD = re.compile(r"[A-Za-z0-9_-]{43}")
SALT_BYTES = 64  # restic's salt length
IV_BYTES = MAC_BYTES = 16


class KeyFileError(MaintkitError):
    """A key file that does not open with the password (wrong password or damaged file)."""


def is_random_password(password: str) -> bool:
    """Whether ``password`` has the form of the ones maintkit makes (nothing a human could guess)."""
    return RANDOM_PASSWORD.fullmatch(password) is not None


def _user_key(password: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes, bytes]:
    """(AES key, MAC k, MAC r) derived from the password as restic derives them."""
    derived = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=64, maxmem=256 * 1024 * 1024 + 128 * n * r * p
    )
    return derived[:32], derived[32:48], derived[48:64]


def poly1305_aes(ciphertext: bytes, iv: bytes, mac_k: bytes, mac_r: bytes) -> bytes:
    """restic's Poly1305-AES: the one-time key is r || AES-128_k(IV) (Poly1305 clamps r itself)."""
    encryptor = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()  # noqa: S305 - one block: AES_k(IV)
    s = encryptor.update(iv) + encryptor.finalize()
    return Poly1305.generate_tag(mac_r + s, ciphertext)


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def seal_key_file(
    password: str, master_key: dict[str, Any], *, n: int = LIGHT_N, r: int = LIGHT_R, p: int = LIGHT_P
) -> tuple[str, bytes]:
    """A restic key file holding ``master_key`` (``restic cat masterkey``'s JSON) under ``password``;
    returns (its id: the SHA-256 of its bytes, its bytes)."""
    salt, iv = os.urandom(SALT_BYTES), os.urandom(IV_BYTES)
    aes_key, mac_k, mac_r = _user_key(password, salt, n, r, p)
    ciphertext = aes_ctr(aes_key, iv, json.dumps(master_key, separators=(",", ":")).encode())
    data = iv + ciphertext + poly1305_aes(ciphertext, iv, mac_k, mac_r)
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    document = {
        "created": created,
        "username": "maintkit",
        "hostname": "maintkit",
        "kdf": "scrypt",
        "N": n,
        "r": r,
        "p": p,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(data).decode(),
    }
    raw = json.dumps(document, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest(), raw


def open_key_file(password: str, raw: bytes) -> dict[str, Any]:
    """The master key a restic key file holds; raises KeyFileError if its MAC does not check."""
    try:
        document = json.loads(raw)
        if document.get("kdf") != "scrypt":
            raise KeyFileError(f"key file with kdf {document.get('kdf')!r}: restic only knows scrypt")
        salt, data = base64.b64decode(document["salt"]), base64.b64decode(document["data"])
        aes_key, mac_k, mac_r = _user_key(
            password, salt, int(document["N"]), int(document["r"]), int(document["p"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"not a restic key file: {exc}") from None
    iv, ciphertext, tag = data[:IV_BYTES], data[IV_BYTES:-MAC_BYTES], data[-MAC_BYTES:]
    expected = poly1305_aes(ciphertext, iv, mac_k, mac_r)
    if len(data) < IV_BYTES + MAC_BYTES or not hmac.compare_digest(expected, tag):
        raise KeyFileError("the key file does not open with this password (MAC mismatch)")
    master: dict[str, Any] = json.loads(aes_ctr(aes_key, iv, ciphertext))
    return master


def key_params(raw: bytes) -> tuple[int, int, int]:
    """(N, r, p) of a key file, read without the password."""
    document = json.loads(raw)
    return int(document["N"]), int(document["r"]), int(document["p"])


def lighten(repo: Repository, target: Target, key: str) -> bool:
    """Give ``repo`` (the repository under ``key`` in ``target``) a light key in place of restic's
    calibrated one, when its password is maintkit's own; True when the repository's only key is
    light afterwards. Never raises for a repository that stays as it was: the calibrated key is
    removed only once restic has opened the repository with the new one.
    """
    password = read_password(repo.password_file)
    if not is_random_password(password):
        return False
    prefix = f"{key}/keys/"
    try:
        files = {name.rsplit("/", 1)[-1]: target.get_bytes(name) for name, _, _ in target.list_keys(prefix)}
        light = [kid for kid, raw in files.items() if key_params(raw) == (LIGHT_N, LIGHT_R, LIGHT_P)]
    except (MaintkitError, OSError, ValueError, KeyError, TypeError):
        return False
    if light and len(files) == 1:
        return True
    new_id = light[0] if light else ""  # a light key beside the calibrated one: an attempt stopped
    try:
        if not new_id:
            master = json.loads(repo.run("cat", "masterkey").stdout)
            new_id, raw = seal_key_file(password, master)
            if open_key_file(password, raw) != master:
                return False
            target.put_bytes(prefix + new_id, raw)
        hint = {"RESTIC_KEY_HINT": new_id}
        listed = json.loads(repo.run("key", "list", "--json", env=hint).stdout)
        in_use = [k for k in listed if k.get("current")]
        if len(in_use) != 1 or not new_id.startswith(str(in_use[0].get("id") or "-")):
            raise KeyFileError(f"restic did not open {repo.name} with the new key")
    except (MaintkitError, OSError, ValueError):
        if new_id:  # only ever maintkit's; the calibrated key is still there
            # a key restic would not use must not stay: without a hint restic might try it first
            with contextlib.suppress(MaintkitError, OSError):
                target.delete_prefix(prefix + new_id)
        return False
    try:
        for old_id in files:
            if old_id != new_id:
                repo.run("key", "remove", old_id, env=hint)
    except MaintkitError:
        return False  # both keys open the repository: slower, never locked out
    return True
