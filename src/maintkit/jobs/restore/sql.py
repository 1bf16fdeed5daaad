"""The SQL of a restore: inspect, stage, prove, commit (swap), rewrite URLs, clean. Text only.

Every statement here is sent to the host's ``mariadb``/``mysql`` client on stdin (never on a command
line) and its ``--batch`` output is parsed here. Values are written as utf8mb4 hex literals
(``_utf8mb4 X'…'``): safe whatever the bytes and whatever the server's
``sql_mode`` (``NO_BACKSLASH_ESCAPES`` or not). Identifiers are backquoted with backquotes doubled.

The restore's database side, in order (``docs/restore.md`` explains why):

1. :func:`inspect_target_sql`: does the target database exist, is it empty (``force``)?
2. the import streams into a **staging database** ``TARGET_mkrestore`` (:func:`stage_sql` creates it).
3. :func:`inspect_sql`: row counts and schema objects of the staging database, and the target's
   objects (what the commit will replace).
4. :func:`definitions_sql`: ``SHOW CREATE`` of the staging database's views, triggers, routines and
   events: they cannot move between databases, so the commit re-creates them.
5. :func:`rewrite_urls_sql` (optional), in the staging database: the copy never points at the
   source's URLs, not even for a moment after the commit.
6. :func:`commit_sql`: **the commit**. Drop the target's objects, ``RENAME TABLE`` every staged
   table into the target (metadata only: milliseconds), re-create views, triggers, routines and
   events there, drop the staging database.
"""

# ruff: noqa: S608  (building SQL text is this module's purpose: every value goes through literal()
# as a hex literal, every identifier through name())

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from maintkit.cms.base import check, get
from maintkit.sources.database import unescape_batch

#: the staging database is the target's name with this suffix (grant it to the restoring user)
STAGING_SUFFIX = "_mkrestore"
MAX_NAME = 64
#: the client delimiter used while re-creating routines and triggers (bodies contain ';')
DELIMITER = "$$maintkit$$"


def name(identifier: str) -> str:
    """A backquoted identifier."""
    return "`" + identifier.replace("`", "``") + "`"


def qualified(database: str, identifier: str) -> str:
    return f"{name(database)}.{name(identifier)}"


def literal(value: str) -> str:
    """A utf8mb4 string literal that no sql_mode or byte can break: ``_utf8mb4 X'…'``.

    (An introducer, not ``CONVERT()``: the literal stays *coercible*, so comparing it with a column
    takes the column's collation instead of failing with "illegal mix of collations".)"""
    return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"


def staging_name(database: str) -> str:
    """The staging database of ``database`` (at most 64 characters)."""
    return database[: MAX_NAME - len(STAGING_SUFFIX)] + STAGING_SUFFIX


# -- 1. the target ----------------------------------------------------------------------------------


def inspect_target_sql(database: str | None = None) -> str:
    """Whether the target exists, how many objects it holds, its charset; the server's version.

    Without ``database`` the statements read ``@mk_db``, which the host script sets from the
    application's config (``from: magento``): the name is known only there.
    """
    db = literal(database) if database is not None else "@mk_db"
    return "\n".join(
        [
            "SELECT '#version', VERSION();",
            f"SELECT '#database', {db};",
            "SELECT '#schema', DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            f"FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db};",
            "SELECT '#objects', "
            f"(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db}) + "
            f"(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db}) + "
            f"(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db});",
        ]
    )


@dataclass
class TargetState:
    """What :func:`inspect_target_sql` found."""

    database: str
    version: str = ""
    exists: bool = False
    objects: int = 0
    charset: str = "utf8mb4"
    collation: str = "utf8mb4_unicode_ci"


def parse_target(stdout: str) -> TargetState:
    rows = tagged_rows(stdout)
    state = TargetState(database=_first(rows, "#database", 0), version=_first(rows, "#version", 0))
    if rows.get("#schema"):
        state.exists = True
        state.charset, state.collation = rows["#schema"][0][0], rows["#schema"][0][1]
    state.objects = int(_first(rows, "#objects", 0) or 0)
    return state


def stage_sql(staging: str, charset: str, collation: str) -> str:
    """(Re)create the empty staging database. A leftover of a killed restore is dropped first: the
    environment lock guarantees no other restore of this database runs."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", charset + collation):
        raise ValueError(f"unexpected charset or collation {charset!r} {collation!r}")
    return (
        f"DROP DATABASE IF EXISTS {name(staging)};\n"
        f"CREATE DATABASE {name(staging)} CHARACTER SET {charset} COLLATE {collation};"
    )


#: the table a drill creates in its staging database (so it lands in the target with the commit),
#: holding its run id: the drill's cleanup drops or empties only a database that carries it
MARKER_TABLE = "_maintkit_drill"


def marker_sql(database: str, run_id: str) -> str:
    """Create the drill's marker table in ``database`` (its staging database) holding ``run_id``."""
    table = qualified(database, MARKER_TABLE)
    return (
        f"CREATE TABLE {table} (run_id VARCHAR(64) NOT NULL PRIMARY KEY, "
        "created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;\n"
        f"INSERT INTO {table} (run_id) VALUES ({literal(run_id)});"
    )


def read_marker_sql(database: str, tag: str) -> str:
    """Rows ``#TAG RUN_ID`` of ``database``'s marker table; none (and no error) when it has none."""
    if not re.fullmatch(r"[a-z_]+", tag):
        raise ValueError(f"unexpected tag {tag!r}")
    table = literal(qualified(database, MARKER_TABLE))
    return "\n".join(
        [
            "SET @mk_q = IF((SELECT COUNT(*) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {literal(database)} AND TABLE_NAME = {literal(MARKER_TABLE)}) > 0, "
            f"CONCAT('SELECT ''#{tag}'', run_id FROM ', {table}), 'SELECT 1, 1 FROM DUAL WHERE FALSE');",
            "PREPARE mk_m FROM @mk_q;",
            "EXECUTE mk_m;",
            "DEALLOCATE PREPARE mk_m;",
        ]
    )


# -- 3. what was staged -----------------------------------------------------------------------------


def rows_sql(database: str) -> str:
    """Exact ``COUNT(*)`` of every base table of ``database``, in one statement (one read view)."""
    db = literal(database)
    return f"""\
SET SESSION group_concat_max_len = 4294967295;
SELECT GROUP_CONCAT(CONCAT('SELECT ''#rows'', ', QUOTE(TABLE_NAME), ', COUNT(*) FROM ',
         '`', REPLACE(TABLE_SCHEMA, '`', '``'), '`.`', REPLACE(TABLE_NAME, '`', '``'), '`')
         ORDER BY TABLE_NAME SEPARATOR ' UNION ALL ')
  INTO @mk_q FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = {db} AND TABLE_TYPE = 'BASE TABLE';
SET @mk_q = COALESCE(@mk_q, 'SELECT 1, 1, 1 FROM DUAL WHERE FALSE');
PREPARE mk_s FROM @mk_q;
EXECUTE mk_s;
DEALLOCATE PREPARE mk_s;"""


def objects_sql(database: str, prefix: str) -> str:
    """Every schema object of ``database``, each line tagged ``#{prefix}KIND``."""
    db = literal(database)
    return "\n".join(
        [
            f"SELECT '#{prefix}table', TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {db} AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME;",
            f"SELECT '#{prefix}view', TABLE_NAME FROM information_schema.VIEWS "
            f"WHERE TABLE_SCHEMA = {db} ORDER BY TABLE_NAME;",
            f"SELECT '#{prefix}trigger', TRIGGER_NAME FROM information_schema.TRIGGERS "
            f"WHERE TRIGGER_SCHEMA = {db} ORDER BY TRIGGER_NAME;",
            f"SELECT CONCAT('#{prefix}', LOWER(ROUTINE_TYPE)), ROUTINE_NAME FROM information_schema.ROUTINES "
            f"WHERE ROUTINE_SCHEMA = {db} ORDER BY ROUTINE_NAME;",
            f"SELECT '#{prefix}event', EVENT_NAME FROM information_schema.EVENTS "
            f"WHERE EVENT_SCHEMA = {db} ORDER BY EVENT_NAME;",
        ]
    )


def inspect_sql(staging: str, target: str, count_rows: bool = True) -> str:
    """Row counts (when asked: a full scan of every table) and objects of the staging database,
    objects of the target."""
    parts = [rows_sql(staging)] if count_rows else []
    return "\n".join([*parts, objects_sql(staging, "s_"), objects_sql(target, "t_")])


OBJECT_KINDS = ("table", "view", "trigger", "function", "procedure", "event")


@dataclass
class Objects:
    """Schema objects of one database, by kind."""

    table: list[str] = field(default_factory=list)
    view: list[str] = field(default_factory=list)
    trigger: list[str] = field(default_factory=list)
    function: list[str] = field(default_factory=list)
    procedure: list[str] = field(default_factory=list)
    event: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, kind) for kind in OBJECT_KINDS)


@dataclass
class Staged:
    """What :func:`inspect_sql` found: the staged rows and objects, the target's objects."""

    rows: dict[str, int]
    staging: Objects
    target: Objects


def parse_inspection(stdout: str) -> Staged:
    rows = tagged_rows(stdout)
    counts = {values[0]: int(values[1]) for values in rows.get("#rows", [])}
    return Staged(counts, _objects(rows, "s_"), _objects(rows, "t_"))


def _objects(rows: dict[str, list[list[str]]], prefix: str) -> Objects:
    found = Objects()
    for kind in OBJECT_KINDS:
        getattr(found, kind).extend(values[0] for values in rows.get(f"#{prefix}{kind}", []))
    return found


# -- 4. definitions -------------------------------------------------------------------------------


#: per kind: the SHOW statement, and the columns of its row holding sql_mode, the statement and
#: collation_connection (None: the kind has no sql_mode column)
_SHOW: dict[str, tuple[str, int | None, int, int]] = {
    "view": ("SHOW CREATE VIEW", None, 1, 3),
    "trigger": ("SHOW CREATE TRIGGER", 1, 2, 4),
    "function": ("SHOW CREATE FUNCTION", 1, 2, 4),
    "procedure": ("SHOW CREATE PROCEDURE", 1, 2, 4),
    "event": ("SHOW CREATE EVENT", 1, 3, 5),
}


@dataclass
class Definition:
    """How to re-create one view, trigger, routine or event.

    The statement is sent as utf8mb4 (what the client reads it as), under the object's own
    ``sql_mode`` and ``collation_connection``, as mysqldump does.
    """

    kind: str
    name: str
    statement: str
    sql_mode: str | None = None
    collation: str = "utf8mb4_general_ci"


def definitions_sql(staging: str, objects: Objects) -> str:
    """``SHOW CREATE`` of every view, trigger, routine and event of the staging database; each answer
    follows a ``#def KIND NAME`` line so the parser knows what it reads."""
    lines = [f"USE {name(staging)};"]
    for kind in ("function", "procedure", "view", "trigger", "event"):
        for item in getattr(objects, kind):
            lines.append(f"SELECT '#def', {literal(kind)}, {literal(item)};")
            lines.append(f"{_SHOW[kind][0]} {name(item)};")
    return "\n".join(lines)


def parse_definitions(stdout: str, staging: str) -> list[Definition]:
    """Parse :func:`definitions_sql` output. View definitions lose their ``staging``. qualifiers (the
    server writes them; mysqldump strips them the same way)."""
    definitions: list[Definition] = []
    pending: tuple[str, str] | None = None
    for line in stdout.split("\n"):
        if not line:
            continue
        values = [unescape_batch(v) for v in line.split("\t")]
        if values[0] == "#def" and len(values) == 3:
            pending = (values[1], values[2])
            continue
        if pending is None:
            raise ValueError(f"unexpected line in the definitions: {line[:200]!r}")
        kind, item = pending
        pending = None
        _, mode, text, collation = _SHOW[kind]
        if len(values) <= max(text, collation):
            raise ValueError(f"unexpected SHOW CREATE answer for {kind} {item}")
        statement = values[text]
        if statement == "NULL":
            raise ValueError(
                f"the server hides the definition of {kind} {item!r} from this user (not its definer); "
                "restore with --definers current (definers: current in a playbook), or as a user that may "
                "read it"
            )
        if kind == "view":
            statement = statement.replace(name(staging) + ".", "")
        sql_mode = values[mode] if mode is not None else None
        definitions.append(Definition(kind, item, statement, sql_mode, values[collation]))
    return definitions


def view_order(definitions: Sequence[Definition]) -> list[Definition]:
    """Views ordered so that a view is created after the views it reads (by name in its text)."""
    views = {d.name: d for d in definitions if d.kind == "view"}
    ordered: list[Definition] = []
    state: dict[str, int] = {}

    def visit(view: str) -> None:
        if state.get(view) == 2:
            return
        if state.get(view) == 1:
            return  # a cycle cannot exist between real views; ignore a false match
        state[view] = 1
        for other in views:
            if other != view and name(other) in views[view].statement:
                visit(other)
        state[view] = 2
        ordered.append(views[view])

    for view in sorted(views):
        visit(view)
    return ordered


# -- 5. URLs ----------------------------------------------------------------------------------------


def rewrite_urls_sql(
    database: str, app: str, url: str, secure_url: str | None = None, table_prefix: str | None = None
) -> str:
    """Point the copy at ``url``: each UPDATE is followed by ``#rewritten TABLE ROWS``.

    Which table and which settings is the CMS profile's (:class:`maintkit.cms.base.UrlRewrite`;
    Magento: the base, link, static and media URLs in ``core_config_data``; WordPress: ``siteurl``
    and ``home`` in ``wp_options``, prefix configurable).
    """
    rewrite = get(check(app, "url_rewrite")).url_rewrite
    assert rewrite is not None
    table = qualified(database, url_table(app, table_prefix))
    return "\n".join(rewrite.statements(table, url, secure_url, literal))


def url_table(app: str, table_prefix: str | None) -> str:
    """The table :func:`rewrite_urls_sql` updates (the profile's, after the table prefix)."""
    rewrite = get(check(app, "url_rewrite")).url_rewrite
    assert rewrite is not None
    prefix = rewrite.default_prefix if table_prefix is None else table_prefix
    return f"{prefix}{rewrite.table}"


# -- 6. the commit ----------------------------------------------------------------------------------


def drop_objects_sql(database: str, objects: Objects) -> list[str]:
    """Statements dropping every object of ``database`` (triggers go with their tables)."""
    out = [f"DROP EVENT IF EXISTS {qualified(database, e)};" for e in objects.event]
    out += [f"DROP PROCEDURE IF EXISTS {qualified(database, p)};" for p in objects.procedure]
    out += [f"DROP FUNCTION IF EXISTS {qualified(database, f)};" for f in objects.function]
    if objects.view:
        out.append("DROP VIEW IF EXISTS " + ", ".join(qualified(database, v) for v in objects.view) + ";")
    if objects.table:
        out.append("DROP TABLE IF EXISTS " + ", ".join(qualified(database, t) for t in objects.table) + ";")
    return out


def commit_sql(
    staging: str,
    target: str,
    staged: Staged,
    definitions: Iterable[Definition],
    create_target: str | None = None,
) -> str:
    """The commit: replace the target's content by the staging database's, then drop the staging one.

    ``create_target`` is ``"CHARSET COLLATION"`` when the target must be created first.
    """
    definitions = list(definitions)
    for definition in definitions:
        if DELIMITER in definition.statement:
            raise ValueError(f"{definition.kind} {definition.name} contains {DELIMITER!r}")
    lines = ["SET NAMES utf8mb4;", "SET SESSION foreign_key_checks = 0;"]
    if create_target:
        charset, collation = create_target.split()
        lines.append(
            f"CREATE DATABASE IF NOT EXISTS {name(target)} CHARACTER SET {charset} COLLATE {collation};"
        )
    lines += drop_objects_sql(target, staged.target)
    lines += [f"DROP TRIGGER {qualified(staging, t)};" for t in staged.staging.trigger]
    if staged.staging.table:
        renames = ", ".join(
            f"{qualified(staging, t)} TO {qualified(target, t)}" for t in staged.staging.table
        )
        lines.append(f"RENAME TABLE {renames};")
    lines.append(f"USE {name(target)};")
    lines.append(f"DELIMITER {DELIMITER}")
    ordered = [d for d in definitions if d.kind in ("function", "procedure")]
    ordered += view_order(definitions)
    ordered += [d for d in definitions if d.kind in ("trigger", "event")]
    for definition in ordered:
        settings = [f"collation_connection = {literal(definition.collation)}"]
        if definition.sql_mode is not None:
            settings.insert(0, f"sql_mode = {literal(definition.sql_mode)}")
        lines.append(f"SET SESSION {', '.join(settings)}{DELIMITER}")
        lines.append(f"{definition.statement}{DELIMITER}")
    lines.append("DELIMITER ;")
    lines.append("SET NAMES utf8mb4;")
    lines.append(f"DROP DATABASE {name(staging)};")
    lines.append("SELECT '#committed', 1;")
    return "\n".join(lines)


def empty_sql(database: str, objects: Objects) -> str:
    """Drop every object of ``database`` (a drill's cleanup of a database it did not create)."""
    return "\n".join(["SET SESSION foreign_key_checks = 0;", *drop_objects_sql(database, objects)])


# -- output -----------------------------------------------------------------------------------------


def tagged_rows(stdout: str) -> dict[str, list[list[str]]]:
    """Group ``--batch`` lines by their first column (``#tag``); values unescaped."""
    rows: dict[str, list[list[str]]] = {}
    for line in stdout.split("\n"):
        if not line.startswith("#"):
            continue
        tag, *values = line.split("\t")
        rows.setdefault(tag, []).append([unescape_batch(v) for v in values])
    return rows


def _first(rows: dict[str, list[list[str]]], tag: str, index: int) -> str:
    values = rows.get(tag)
    return values[0][index] if values and len(values[0]) > index else ""
