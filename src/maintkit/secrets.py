"""Keeping secret values out of every sink: console, JSON output, journal, error messages.

Why one shared redactor: secrets are discovered at different moments (inventory load, template
rendering of ``lookup('env', ...)``), and every sink must see the newest set. Redaction happens once,
where events are emitted, so no sink can forget it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Variable names whose values are treated as secret.
SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|key|credential|private", re.IGNORECASE)
# Connection settings that match SECRET_NAME but hold file paths or host names, not secrets.
NOT_SECRET_NAMES = frozenset(
    {
        "ansible_ssh_private_key_file",
        "key",
        "known_hosts",
        "accept_new_host_keys",
        "ansible_ssh_common_args",
    }
)
# Values shorter than this are not redacted (they would mask every "1" or "yes" in the output);
# validation warns about such secrets instead.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str, declared: Iterable[str] = ()) -> bool:
    """Return True when a variable of this name holds a secret, by declaration or by its name."""
    if name in declared:
        return True
    return name not in NOT_SECRET_NAMES and bool(SECRET_NAME.search(name))


class Redactor:
    """A thread-safe set of secret strings, and the function that masks them in any value."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: Any) -> None:
        """Remember a secret value (nested containers are walked)."""
        if isinstance(value, Mapping):
            for v in value.values():
                self.add(v)
            return
        if isinstance(value, list | tuple):
            for v in value:
                self.add(v)
            return
        if value is None or isinstance(value, bool):
            return
        text = str(value)
        if len(text) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if text not in self._secrets:
                self._secrets.add(text)
                self._pattern = None

    def add_vars(self, variables: Mapping[str, Any], declared: Iterable[str] = ()) -> None:
        """Remember the values of every secret variable in a mapping (by declaration or name)."""
        declared = set(declared)
        for name, value in variables.items():
            if is_secret_name(name, declared):
                self.add(value)

    @property
    def secrets(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._secrets)

    def contains_secret(self, text: str) -> bool:
        return any(s in text for s in self.secrets)

    def __call__(self, value: Any) -> Any:
        """Return ``value`` with every secret replaced by ``***`` (strings, dicts, lists, exceptions)."""
        if isinstance(value, str):
            pattern = self._compiled()
            return pattern.sub(MASK, value) if pattern else value
        if isinstance(value, bytes):
            return self(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, BaseException):
            return self(f"{type(value).__name__}: {value}")
        return value

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))
            return self._pattern
