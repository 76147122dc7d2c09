"""Bringing an existing node database up to the current tables: columns added since it was created.

`create_all` makes missing tables but never changes an existing one, so a node home written by an earlier
release would miss the columns added since. Every column added after a table first shipped is nullable (or has
a server default), so adding it with `ALTER TABLE ... ADD COLUMN` keeps every existing row valid; the same
statement works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.schema import Column

from fedbench.errors import StoreError

__all__ = ["add_missing_columns"]


def _add_column(table: str, column: Column[object], engine: Engine) -> str:
    """`ALTER TABLE <table> ADD COLUMN <column> <type>`, quoted and typed for the engine's dialect."""
    preparer = engine.dialect.identifier_preparer
    kind = column.type.compile(dialect=engine.dialect)
    return f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add to each existing table the columns the models declare and it lacks; returns them as `table.column`.

    A missing column that could not hold the existing rows (not nullable, no server default) is a
    `StoreError`: such a change needs a migration of its own.
    """
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    added: list[str] = []
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                if not column.nullable and column.server_default is None:
                    raise StoreError(
                        f"the database's table {table.name!r} lacks column {column.name!r}, which cannot be "
                        "added to existing rows; restore a backup made by this release or start a new home"
                    )
                connection.exec_driver_sql(_add_column(table.name, column, engine))
                added.append(f"{table.name}.{column.name}")
    return added
