"""Talking to hosts: the Transport interface (base), its implementations, and the registry."""
