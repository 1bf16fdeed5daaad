"""How commands reach a host: one small interface, an SSH and a local implementation."""

from maintkit.transport.base import CommandResult, Transport, open_transport

__all__ = ["CommandResult", "Transport", "open_transport"]
