"""A remote port forward over the host's SSH connection: the host reaches one control-side port.

Why: incremental file snapshots (docs/snapshots.md) run the engine *on the host* and let it write
to a server on the control node (``rclone serve restic --append-only``). The host must reach that
server without reaching the control node otherwise, and without any listener the control node
exposes to the network: the control node asks sshd to listen on the host's 127.0.0.1 (a port sshd
picks), and each connection there arrives as a channel on the connection we already hold, which
this module joins to 127.0.0.1:<port> on the control node. Nothing else is reachable through it.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import paramiko

log = logging.getLogger(__name__)

CHUNK = 256 * 1024


def _copy(read: socket.socket | paramiko.Channel, write: socket.socket | paramiko.Channel) -> None:
    """Copy one direction until EOF, then half-close the other side (HTTP keep-alive ends cleanly)."""
    try:
        while data := read.recv(CHUNK):
            write.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            if isinstance(write, socket.socket):
                write.shutdown(socket.SHUT_WR)
            else:
                write.shutdown_write()


def _join(chan: paramiko.Channel, local_port: int) -> None:
    """Join one forwarded channel to the control-side port (two copy threads; both ends closed after)."""
    try:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=10)
    except OSError as exc:
        log.warning("remote forward: 127.0.0.1:%s refused a connection: %s", local_port, exc)
        chan.close()
        return
    sock.settimeout(None)
    back = threading.Thread(target=_copy, args=(sock, chan), daemon=True, name="forward-back")
    back.start()
    _copy(chan, sock)
    back.join()
    sock.close()
    chan.close()


@contextmanager
def remote_forward(transport: paramiko.Transport, local_port: int) -> Iterator[int]:
    """Listen on the host's 127.0.0.1 and forward to the control node's 127.0.0.1:``local_port``.

    Yields the host-side port (sshd picks a free one). The listener is cancelled on exit; a
    connection still open then is closed with the transport's channels.
    """

    def handler(chan: paramiko.Channel, origin: tuple[str, int], server: tuple[str, int]) -> None:
        threading.Thread(target=_join, args=(chan, local_port), daemon=True, name="forward").start()

    port = transport.request_port_forward("127.0.0.1", 0, handler)
    if not port:
        raise paramiko.SSHException("the host's sshd refused the remote port forward (AllowTcpForwarding?)")
    try:
        yield int(port)
    finally:
        with suppress(paramiko.SSHException, OSError, EOFError):  # a lost connection took it along
            transport.cancel_port_forward("127.0.0.1", int(port))
