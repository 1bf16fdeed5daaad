"""``ansible_ssh_common_args`` / ``ansible_ssh_extra_args``: the ProxyJump in them, and nothing else.

Why only ProxyJump: it is what these variables carry in the inventories agencies have (a bastion in
front of the shops), and without it the hosts cannot be reached at all. maintkit talks SSH through
paramiko, not ssh(1), so other ssh options cannot be passed through; each is refused by name rather
than ignored (an ignored ``-o StrictHostKeyChecking`` or ``-i`` would silently change what runs).
Spellings accepted, as ssh(1) takes them: ``-J SPEC``, ``-JSPEC``, ``-o ProxyJump=SPEC``,
``-oProxyJump=SPEC``, ``-o "ProxyJump SPEC"``; SPEC is ``[user@]host[:port]``, comma-separated for
several hops (first hop first), or ``none``.
"""

from __future__ import annotations

import re
import shlex

from maintkit.model.hosts import JumpHop

_HOP = re.compile(
    r"^(?:(?P<user>[^@\s/]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:@\s/\[\]]+))(?::(?P<port>\d+))?$"
)


def proxy_jump(args: str) -> list[JumpHop]:
    """The hops of the ProxyJump in ssh arguments (empty: none). Raise ValueError saying what is
    not supported, or what is wrong with a hop."""
    try:
        words = shlex.split(args)
    except ValueError as error:
        raise ValueError(f"cannot be split as a shell would: {error}") from None
    spec: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-J", "-o"):
            if index + 1 >= len(words):
                raise ValueError(f"{word} needs a value")
            value, index = words[index + 1], index + 2
        elif word.startswith(("-J", "-o")):
            value, index = word[2:], index + 1
        else:
            raise ValueError(_unsupported(word))
        if word.startswith("-J"):
            spec = value
            continue
        key, _, rest = value.replace("=", " ", 1).partition(" ")
        if key.lower() != "proxyjump":
            raise ValueError(_unsupported(f"-o {value}"))
        spec = rest.strip()
    if spec is None or spec.lower() == "none":
        return []
    return [_hop(part) for part in spec.split(",")]


def _hop(text: str) -> JumpHop:
    match = _HOP.match(text.strip())
    if match is None:
        raise ValueError(f"ProxyJump hop {text!r} is not [user@]host[:port]")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"ProxyJump hop {text!r}: the port must be from 1 to 65535")
    return JumpHop(match["v6"] or match["host"], port, match["user"])


def _unsupported(option: str) -> str:
    return (
        f"{option!r} is not supported: maintkit takes only ProxyJump from these arguments "
        "(-J HOST or -o ProxyJump=HOST); put other ssh options in ~/.ssh/config (Host NAME), "
        "which maintkit reads"
    )
