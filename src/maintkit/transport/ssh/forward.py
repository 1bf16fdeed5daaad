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


class _Routes:
    """The forwards open on one paramiko transport: host-side port → control-side port.

    Why: paramiko keeps ONE handler per transport for every forwarded channel (``request_port_forward``
    replaces it, ``cancel_port_forward`` clears it), so two forwards on one connection (two sites of
    one server sharing it, a preflight beside a night) would send the first one's connections to the
    second's server, and closing either would cut both. One handler per transport routes each channel
    by the port sshd says it arrived on; a forward is cancelled with the bare SSH request.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ports: dict[int, int] = {}

    def handler(self, chan: paramiko.Channel, origin: tuple[str, int], server: tuple[str, int]) -> None:
        with self.lock:
            local_port = self.ports.get(int(server[1]))
        if local_port is None:  # a listener being cancelled: nothing of ours is behind it any more
            chan.close()
            return
        threading.Thread(target=_join, args=(chan, local_port), daemon=True, name="forward").start()


_ROUTES_LOCK = threading.Lock()


def _routes(transport: paramiko.Transport) -> _Routes:
    with _ROUTES_LOCK:
        routes = getattr(transport, "_maintkit_routes", None)
        if routes is None:
            routes = _Routes()
            transport._maintkit_routes = routes  # held by the transport: gone with it
        return routes


@contextmanager
def remote_forward(transport: paramiko.Transport, local_port: int) -> Iterator[int]:
    """Listen on the host's 127.0.0.1 and forward to the control node's 127.0.0.1:``local_port``.

    Yields the host-side port (sshd picks a free one). The listener is cancelled on exit; a
    connection still open then is closed with the transport's channels. Other forwards on the same
    transport keep working (:class:`_Routes`).
    """
    routes = _routes(transport)
    # not under routes.lock: paramiko's reader thread, which runs the handler, must read the answer
    port = transport.request_port_forward("127.0.0.1", 0, routes.handler)
    if not port:
        raise paramiko.SSHException("the host's sshd refused the remote port forward (AllowTcpForwarding?)")
    with routes.lock:  # nothing connects before the port is yielded: nobody knows it yet
        routes.ports[int(port)] = local_port
    try:
        yield int(port)
    finally:
        with routes.lock:
            routes.ports.pop(int(port), None)
        with suppress(paramiko.SSHException, OSError, EOFError):  # a lost connection took it along
            if transport.is_active():  # not paramiko's cancel_port_forward: it clears every route
                transport.global_request("cancel-tcpip-forward", ("127.0.0.1", int(port)), wait=True)
