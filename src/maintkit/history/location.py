"""Where the history is: its URL from the environment or beside the journals (no SQLAlchemy import).

Why apart from :mod:`.database`: every run asks this question, and answering it must not load
SQLAlchemy on the run's start-up path (the recording thread loads it later).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_URL = "MAINTKIT_DATABASE_URL"
SQLITE_NAME = "history.sqlite"


def database_url(journal_dir: Path, explicit: str | None = None) -> str:
    """The history's URL: the argument, else $MAINTKIT_DATABASE_URL, else SQLite beside the journals.

    The journal folder defaults to ``.maintkit/runs``; the database is then ``.maintkit/history.sqlite``.
    ``postgresql://`` and ``postgres://`` URLs are given psycopg 3 as their driver.
    """
    url = explicit or os.environ.get(ENV_URL)
    if not url:
        return f"sqlite:///{(journal_dir.parent / SQLITE_NAME).absolute()}"
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
