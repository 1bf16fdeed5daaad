"""The history: every run of every command, recorded in a database that ``status`` and reports read.

Why a database beside the journals: the journals are one file per run on whichever machine ran it;
"when was the last verified snapshot of every site" is a query over thousands of runs. The journal
stays the source of each run's events (:mod:`maintkit.history.mapping` turns them into rows, and
``maintkit history import`` re-reads them); the database is what is derived from them.

SQLAlchemy and Alembic are imported by the modules that need them, never here: ``maintkit --help``
loads this package's name only.
"""
