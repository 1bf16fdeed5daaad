"""The history's schema: Alembic's scripts create exactly the models, and HEAD names the newest script."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from maintkit.history.database import HEAD, alembic_config, current_revision, open_engine
from maintkit.history.models import Base


def test_head_is_the_newest_migration_shipped():
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


def test_opening_a_new_database_migrates_it_to_exactly_the_models(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'h.sqlite'}")
    assert current_revision(engine) == HEAD
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()
    assert (tmp_path / "h.sqlite").stat().st_mode & 0o777 == 0o600
    again = open_engine(f"sqlite:///{tmp_path / 'h.sqlite'}")  # already at the head: nothing to do
    assert current_revision(again) == HEAD
    again.dispose()
