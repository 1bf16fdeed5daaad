"""The session runner's framing, fed the way SSH delivers bytes: in pieces that split anything."""

from __future__ import annotations

import subprocess

import pytest

from maintkit.transport.base import Tail
from maintkit.transport.session import RUNNER, _Framed

TOKEN = b"mk-0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("piece", [1, 2, 5, len(TOKEN) - 1, len(TOKEN), 1000])
def test_output_before_the_token_is_kept_whole_whatever_the_pieces(piece: int) -> None:
    output = b"line one\nmk-0123 almost a token\n" + TOKEN[:-1] + b" not quite\nlast"
    stream = output + TOKEN + b" 7\n"
    tail = Tail()
    framed = _Framed(TOKEN, tail)
    for start in range(0, len(stream), piece):
        framed.write(stream[start : start + piece])
    assert tail.text().encode() == output
    assert framed.after == b" 7\n"


def test_without_a_token_flush_hands_over_what_was_held_back() -> None:
    tail = Tail()
    framed = _Framed(TOKEN, tail)
    framed.write(b"cut off mid-" + TOKEN[:10])
    assert framed.after is None
    framed.flush()
    assert tail.text().encode() == b"cut off mid-" + TOKEN[:10]


def test_the_runner_is_posix_sh_and_isolates_commands() -> None:
    """The runner text itself, under /bin/sh (dash on Debian: stricter than bash)."""
    token = TOKEN.decode()
    script = (
        f"{token}\n"
        f"cd /; X=1; exit 3\n{token}\n"
        f'pwd; echo "[${{X-}}]"; printf partial\n{token}\n'
        f"cat; echo after-cat\n{token}\n"
    )
    done = subprocess.run(
        ["sh", "-c", RUNNER], input=script.encode(), capture_output=True, timeout=10, check=False
    )
    out = done.stdout.decode()
    first, rest = out.split("\n", 1)
    assert first.startswith(f"{token} ") and first.split()[1].isdigit()  # the runner's pid
    home = subprocess.run(["pwd"], capture_output=True, text=True, check=True).stdout
    assert rest == f"{token} 3\n{home}[]\npartial{token} 0\nafter-cat\n{token} 0\n"
    assert done.stderr.decode() == f"{token}\n" * 4
    assert done.returncode == 0  # EOF on stdin ends the runner cleanly
