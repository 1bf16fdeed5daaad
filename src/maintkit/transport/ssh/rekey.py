"""A patch of paramiko's private API: answer a channel close without deadlocking a key exchange.

Why its own module: it reaches into paramiko internals (``_channel_handler_table``,
``_close_internal``, ``_send_user_message``); when paramiko changes, this is the one place to look.
"""

from __future__ import annotations

import logging
import threading

import paramiko

log = logging.getLogger(__name__)


def avoid_rekey_deadlock(transport: paramiko.Transport) -> None:
    """Answer a channel close without blocking paramiko's reader thread during a key exchange.

    paramiko#822 (open since 2016): when paramiko starts a rekey itself (every 512 MiB or 2**29
    packets), it stops user messages until the exchange ends, and its reader thread then handles
    what the server sent before its KEXINIT. A CHANNEL_CLOSE among those makes the reader thread
    send its own CLOSE: it waits for the end of the exchange that only it can finish, for
    ``clear_to_send_timeout`` (30 s), then the connection dies. Seen here on the second 1 GB stream
    of a connection. The per-transport handler below updates the channel's state at once, as
    paramiko does, and leaves only the sending of the reply to a short-lived thread in that case.
    """
    table = dict(transport._channel_handler_table)
    table[paramiko.common.MSG_CHANNEL_CLOSE] = _handle_close
    transport._channel_handler_table = table


def _handle_close(chan: paramiko.Channel, message: paramiko.Message) -> None:
    transport = chan.transport
    if transport is None or transport.clear_to_send.is_set():
        paramiko.Channel._handle_close(chan, message)
        return
    with chan.lock:
        replies = [m for m in chan._close_internal() if m is not None]
        transport._unlink_channel(chan.chanid)
    if replies:
        threading.Thread(
            target=_send_after_rekey, args=(transport, replies), name="maintkit-close", daemon=True
        ).start()


def _send_after_rekey(transport: paramiko.Transport, replies: list[paramiko.Message]) -> None:
    for reply in replies:
        try:
            transport._send_user_message(reply)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            log.debug("could not answer a channel close after a rekey: %s", exc)
            return
