"""The SSH transport, split by concern: connect, channels (one command), kill, rekey (a paramiko patch),
and transport (SSHTransport: the three execution paths over one reused connection)."""
