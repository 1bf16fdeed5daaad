"""Where the history is: its URL from the environment, else SQLite in the project's ``.maintkit/``.

Why apart from :mod:`.database`: every run asks this question, and answering it must not load
SQLAlchemy on the run's start-up path (the recording thread loads it later, if at all).

Why ``.maintkit/history.sqlite`` of the project folder and not beside the journals: the history is
the project's (DESIGN.md: "SQLite in ``.maintkit/``"); a run given another ``--journal-dir`` (a
fleet's, a test's) must record into the same history that ``status`` reads. Until this change the
file was the journal folder's sibling; such an existing file is still used when the project has
none yet (:func:`database_url`), so nothing recorded is lost.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_URL = "MAINTKIT_DATABASE_URL"
SQLITE_NAME = "history.sqlite"
#: the project's own folder (where the journals, the lock and snapshot defaults live too)
STATE_DIR = ".maintkit"


def sqlite_path(journal_dir: Path, cwd: Path | None = None) -> Path:
    """The embedded history's file: ``.maintkit/history.sqlite`` in the project folder ``cwd``.

    When that file does not exist but one beside the journal folder does (where earlier versions
    put it for a ``--journal-dir`` outside ``.maintkit``), that one is used.
    """
    base = (cwd or Path.cwd()) / STATE_DIR / SQLITE_NAME
    legacy = journal_dir.parent / SQLITE_NAME
    if not base.exists() and legacy.absolute() != base.absolute() and legacy.is_file():
        return legacy.absolute()
    return base.absolute()


def database_url(journal_dir: Path, explicit: str | None = None, cwd: Path | None = None) -> str:
    """The history's URL: the argument, else $MAINTKIT_DATABASE_URL, else SQLite in ``.maintkit/``.

    ``postgresql://`` and ``postgres://`` URLs are given psycopg 3 as their driver.
    """
    url = explicit or os.environ.get(ENV_URL)
    if not url:
        return f"sqlite:///{sqlite_path(journal_dir, cwd)}"
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
