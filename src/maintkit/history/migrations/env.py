"""Alembic's environment for the history: runs on the connection the caller hands over.

Why no URL here: maintkit opens the database itself (:func:`maintkit.history.database.open_engine`)
and passes the connection in ``config.attributes["connection"]``; migrations never see a password.
"""

from __future__ import annotations

from alembic import context

from maintkit.history.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
