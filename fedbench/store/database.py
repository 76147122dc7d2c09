"""The node's metadata database: one engine per node, SQLite under the home by default or any SQLAlchemy URL.

Opening a `Database` creates the tables, so a node can start on an empty home, and adds the columns an older
home lacks (`upgrade.py`); on PostgreSQL it first creates
the database itself when it does not exist yet (through the `postgres` maintenance database, which needs the
CREATEDB right), so one server can hold a database per node. A bare `postgresql://` URL uses psycopg 3 when
psycopg2 is not installed. Every failure to parse, load a driver for, or reach the database becomes a
`StoreError` naming the URL (password masked) and the fix.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from fedbench.errors import StoreError
from fedbench.store.models import METADATA
from fedbench.store.upgrade import add_missing_columns

SQLITE_BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
_EXAMPLES = (
    "for example 'sqlite:////srv/fedbench/fedbench.db' or 'postgresql+psycopg://user:pw@host:5432/fedbench'"
)
_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "'psycopg[binary]'",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
}


def sqlite_url(home: Path) -> str:
    """Return the URL of the default SQLite database of a node home: `sqlite:///<home>/fedbench.db`."""
    return f"sqlite:///{Path(home).expanduser().absolute() / 'fedbench.db'}"


def mask_url(url: str | URL) -> str:
    """Return `url` as text with its password replaced by '***', even when it cannot be parsed."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _default_postgres_driver(parsed: URL) -> URL:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 instead when only it is installed."""
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg2") is not None:
        return parsed
    if importlib.util.find_spec("psycopg") is None:
        return parsed
    return parsed.set(drivername="postgresql+psycopg")


class Database:
    """The metadata database of a node; `session()` gives a transaction that commits on success."""

    def __init__(self, url: str) -> None:
        """Open (creating tables if needed) the database at `url`; raise StoreError if it is unusable."""
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError, TypeError) as exc:
            raise StoreError(
                f"database URL {mask_url(str(url))!r} is not valid ({_reason(exc)}); "
                f"give a SQLAlchemy URL, {_EXAMPLES}"
            ) from exc
        parsed = _default_postgres_driver(parsed)
        self.url = parsed.render_as_string(hide_password=True)
        self.engine = self._create_engine(parsed)
        if parsed.get_backend_name() == "postgresql":
            self._create_missing_postgres_database(parsed)
        try:
            METADATA.create_all(self.engine)
            add_missing_columns(self.engine, METADATA)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(self._unreachable_message(parsed, exc)) from exc

    def _create_engine(self, parsed: URL) -> Engine:
        kwargs: dict[str, Any] = {}
        backend, _, driver = parsed.drivername.partition("+")
        if backend == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
            if parsed.database in (None, "", ":memory:"):
                kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_pre_ping"] = True
            if backend == "postgresql" and driver in ("", "psycopg2", "psycopg"):
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        try:
            engine = create_engine(parsed, **kwargs)
        except NoSuchModuleError as exc:
            raise StoreError(
                f"database URL {self.url!r} names an unknown database kind {parsed.drivername!r}; "
                f"use a SQLAlchemy URL, {_EXAMPLES}"
            ) from exc
        except ImportError as exc:
            module = str(getattr(exc, "name", None) or driver or backend).split(".")[0]
            package = _DRIVER_PACKAGES.get(module, module)
            raise StoreError(
                f"database URL {self.url!r} needs the Python driver {module!r}, which is not installed; "
                f"install it (pip install {package}) or use another URL, {_EXAMPLES}"
            ) from exc
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"cannot use database URL {self.url!r}: {_reason(exc)}; fix the URL, {_EXAMPLES}"
            ) from exc
        if backend == "sqlite":
            event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine

    def _create_missing_postgres_database(self, parsed: URL) -> None:
        """Create the URL's database on its server if the server says it does not exist."""
        name = parsed.database
        try:
            with self.engine.connect():
                return
        except OperationalError as exc:
            if not name or f'database "{name}" does not exist' not in str(exc):
                return
        kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        if parsed.get_driver_name() in ("psycopg2", "psycopg"):
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        maintenance = create_engine(parsed.set(database="postgres"), **kwargs)
        try:
            with maintenance.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}")
        except SQLAlchemyError as exc:
            if "already exists" in str(exc):
                return
            self.engine.dispose()
            raise StoreError(
                f"database {name!r} does not exist on {self.url!r} and cannot be created: {_reason(exc)}; "
                f"create it (createdb {name}) or give the user the CREATEDB right"
            ) from exc
        finally:
            maintenance.dispose()

    def _unreachable_message(self, parsed: URL, exc: BaseException) -> str:
        if parsed.get_backend_name() == "sqlite":
            where = Path(parsed.database or "").parent
            return (
                f"cannot open the SQLite database {self.url!r}: {_reason(exc)}; check that the directory "
                f"'{where}' exists and is writable, and that no other program holds the file locked"
            )
        return (
            f"cannot reach the database {self.url!r}: {_reason(exc)}; check that the server is running and "
            "that the host, port, user, password and database name in the URL are right"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a Session in a transaction: committed if the block succeeds, rolled back if it raises."""
        session = Session(self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreError(
                f"database {self.url!r} failed: {_reason(exc)}; retry, or check the database"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Release every pooled connection; the object must not be used afterwards."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"
