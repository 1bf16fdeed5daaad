"""The sudo command line of become (transport/become.py): the password is never in it."""

from __future__ import annotations

import io
import shlex

from maintkit.transport.become import _Prefixed, become_command


def test_the_command_is_quoted_and_carries_no_password() -> None:
    command = become_command("echo 'a b' > ~/x; id -un", "www data", password=True)
    words = shlex.split(command)
    assert words[:9] == ["sudo", "-S", "-k", "-p", "", "-H", "-u", "www data", "--"]
    assert words[9:] == ["bash", "-c", "echo 'a b' > ~/x; id -un"]


def test_without_a_password_sudo_must_not_ask() -> None:
    assert shlex.split(become_command("true", "root", password=False))[:2] == ["sudo", "-n"]


def test_the_password_line_comes_before_the_data() -> None:
    reader = _Prefixed(b"secret\n", io.BytesIO(b"dump bytes"))
    assert reader.read(4) == b"secret\n" and reader.read(4) == b"dump" and reader.read() == b" bytes"
