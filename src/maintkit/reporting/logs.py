"""Python logging for the CLI: maintkit's own warnings as one line on stderr, libraries' logs off.

Why: with no handler configured, Python's ``logging.lastResort`` prints every WARNING of every
library on stderr, tracebacks included: s3transfer and botocore while a failed multipart upload is
aborted, paramiko (one ERROR record per traceback line) when a host never sends its SSH banner. The
failure itself already reaches the user once, clearly, as the step's or the command's error; those
tracebacks only bury it (and scare whoever reads the cron mail). maintkit's own warnings (a cleanup
that could not be done) are kept, one line each, without traceback. ``MAINTKIT_DEBUG=1`` shows
everything, tracebacks included, for a developer.
"""

from __future__ import annotations

import logging
import os
import sys

_configured = False


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"warning: {record.getMessage()}"


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "maintkit" or record.name.startswith("maintkit.")


def configure_logging() -> None:
    """Install the CLI's logging once (idempotent); see the module's docstring."""
    global _configured
    if _configured:
        return
    _configured = True
    logging.raiseExceptions = False  # a closed stderr must not print "--- Logging error ---" blocks
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("MAINTKIT_DEBUG"):
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.setLevel(logging.DEBUG)
    else:
        handler.setFormatter(_OneLine())
        handler.addFilter(_ours)
        handler.setLevel(logging.WARNING)
        root.setLevel(logging.WARNING)
    root.addHandler(handler)
