"""Which database the history is, and opening it: URL, SQLite's file and pragmas, migrations.

Why migrations on open: every command that records or reads opens the store, so a maintkit upgrade
that adds a column upgrades the database the first time it is used, on every machine that shares
it, with no separate step anybody forgets. Alembic's scripts ship inside the package
(``maintkit.history/migrations``); the current revision is compared first, so an up-to-date database
costs one small query.

Why SQLite in WAL mode with a busy timeout: recording runs while ``status`` reads must not block
either, and two runs finishing at the same moment wait for each other instead of failing. The file is
created 0600 before SQLite opens it: it names hosts, sites and errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from maintkit.fsmodes import make_private_dirs, open_private
from maintkit.history.models import Base
from maintkit.history.schema import HEAD as HEAD  # re-exported: the migrations' tests read it here

if TYPE_CHECKING:
    from alembic.config import Config

# HEAD (from .schema): a database already at the newest revision is used without importing Alembic,
# a third of ``status``'s start-up
#: Alembic's ``context``/``script`` proxies are module globals: two threads of one process migrating
#: at once (the history sink still migrating a new database when the run's trends open it) break
#: each other (KeyError: 'script'); one migration at a time per process
_MIGRATING = threading.Lock()

#: seconds a connection attempt to a database server may take (a dead server must not hang a run's end)
CONNECT_TIMEOUT = 5
#: milliseconds a SQLite writer waits for another one
SQLITE_BUSY_MS = 10_000


class HistoryUnavailable(Exception):
    """The history database could not be opened or written; the message holds no password."""


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages (an unparseable URL is not echoed at all)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable database URL)"


def describe_error(error: BaseException, url: str) -> str:
    """One line about a database error, without the URL's password."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    try:
        password = make_url(url).password
    except Exception:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return f"{type(error).__name__}: {text}"


def open_engine(url: str, connected: Callable[[], None] | None = None) -> Engine:
    """Connect (SQLite: create the 0600 file and its folder first) and bring the schema to the head.

    ``connected`` is called once the database has answered (before the migrations, which may take
    seconds on a fresh PostgreSQL database): the run's end then waits for its history. Raise
    :class:`HistoryUnavailable` when the database cannot be reached or migrated.
    """
    try:
        parsed = make_url(url)
    except Exception as error:
        raise HistoryUnavailable("the history database URL cannot be parsed") from error
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed.database)
        else:
            args: dict[str, Any] = {}
            if parsed.get_backend_name() == "postgresql":
                args["connect_timeout"] = CONNECT_TIMEOUT
            engine = create_engine(url, connect_args=args, pool_pre_ping=True)
        if connected is not None:
            event.listen(engine, "connect", lambda *_args: connected(), once=True)
        migrate(engine)
    except HistoryUnavailable:
        raise
    except (SQLAlchemyError, OSError, ImportError) as error:
        raise HistoryUnavailable(f"{safe_url(url)}: {describe_error(error, url)}") from None
    return engine


def _sqlite_engine(path: str | None) -> Engine:
    if path and path != ":memory:":
        file = Path(path)
        make_private_dirs(file.parent)
        if not file.exists():
            os.close(open_private(file))
    engine = create_engine(f"sqlite:///{path or ':memory:'}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def alembic_config() -> Config:
    """Alembic's configuration for the scripts shipped in this package (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "maintkit.history:migrations")
    return config


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision (None: an empty database), read with one plain query."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision, unless it is there already (one query, no Alembic)."""
    if current_revision(engine) == HEAD:
        return
    with _MIGRATING:
        _migrate(engine)


def _migrate(engine: Engine) -> None:
    if current_revision(engine) == HEAD:  # another thread did it while this one waited
        return
    from alembic import command

    config = alembic_config()
    for attempt in range(2):  # two processes migrating at once: the second one finds it done
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except SQLAlchemyError:
            if current_revision(engine) == HEAD:
                return
            if attempt:
                raise


def metadata() -> Any:
    """The models' metadata (what Alembic's autogenerate compares the database with)."""
    return Base.metadata
