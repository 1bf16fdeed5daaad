"""Prove, before a snapshot, that the host can reach the control node through a remote forward.

Why a real round trip and not a look at sshd_config: the restic engine writes through
``ssh -R``-style forwarding (:mod:`maintkit.transport.ssh.forward`), which sshd may refuse
(``AllowTcpForwarding no`` or ``local``, ``DisableForwarding yes``, ``PermitListen none``) or a
``Match`` block may refuse for this user only; the login user usually cannot read sshd_config
anyway. So the check does what the engine will do: ask for the forward, connect from the host to
the port sshd gives, and read a random token a one-shot listener on the control node's 127.0.0.1
sends. A refusal is reported by the setting's name before any snapshot begins.
"""

from __future__ import annotations

import secrets
import socket
import threading
from contextlib import AbstractContextManager, suppress
from typing import Protocol, cast

import paramiko

from maintkit.jobs.context import HostContext
from maintkit.model.problems import MaintkitError
from maintkit.sources.script import bash_command

ROUND_TRIP_TIMEOUT = 30.0


class Forwarding(Protocol):
    """A transport that can open a remote forward (the SSH one; a local host needs none)."""

    def forward_remote(self, local_port: int, *, bulk: bool = True) -> AbstractContextManager[int]: ...


def refused_message(host: str, user: str | None, reason: str) -> str:
    who = f"Match User {user}" if user else "a Match block"
    return (
        f"the sshd of {host} refuses remote port forwarding ({reason}), which files_engine: restic "
        f"needs (restic on the host writes through it to the control node): set `AllowTcpForwarding yes` "
        f"(or `remote`) in its sshd_config (`{who}` is enough; `DisableForwarding yes` and "
        f"`PermitListen none` refuse it too), or keep files_engine: tar for this host"
    )


def _serve_token(listener: socket.socket, token: bytes) -> None:
    """Accept one connection, send the token, close (the listener is closed by the caller)."""
    try:
        conn, _addr = listener.accept()
    except OSError:
        return
    with conn:
        conn.sendall(token)


def read_command(port: int, size: int) -> str:
    """On the host: connect to 127.0.0.1:PORT with bash's /dev/tcp and print what arrives."""
    return bash_command(f"exec 3<>/dev/tcp/127.0.0.1/{int(port)} && head -c {int(size)} <&3")


def check_remote_forward(ctx: HostContext) -> str:
    """Return "" when a forward works end to end, else the problem (naming the sshd setting).

    A transport without ``forward_remote`` (``connection: local``) needs none: "" as well.
    """
    if not hasattr(ctx.transport, "forward_remote"):
        return ""
    transport = cast(Forwarding, ctx.transport)
    token = secrets.token_hex(16).encode()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(ROUND_TRIP_TIMEOUT)
        server = threading.Thread(target=_serve_token, args=(listener, token), daemon=True, name="fwd-check")
        server.start()
        try:
            with transport.forward_remote(listener.getsockname()[1]) as host_port:
                result = ctx.run(read_command(host_port, len(token)), timeout=ROUND_TRIP_TIMEOUT)
        except (paramiko.SSHException, EOFError) as error:
            return refused_message(ctx.host.name, ctx.host.user, str(error) or type(error).__name__)
        except (MaintkitError, OSError) as error:
            return f"the remote port forward to {ctx.host.name} could not be tried: {error}"
        finally:
            if server.is_alive():  # nothing came through: wake its accept() (close does not) and end it
                with suppress(OSError), socket.create_connection(listener.getsockname(), timeout=5):
                    pass
            server.join(timeout=5)
    if result.stdout.strip().encode() != token:
        return (
            f"{ctx.host.name} accepted the remote port forward but nothing came through it "
            f"(exit status {result.rc}: {result.stderr.strip()[-200:] or 'no output'}): a `PermitListen` "
            "rule or a local firewall on the host may block 127.0.0.1; files_engine: restic needs it"
        )
    return ""
