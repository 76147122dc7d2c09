"""Tests of the node's storage layer: metadata database, content-addressed artifact files, table sources."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import StatementError
from sqlmodel import select

from fedbench.errors import DatasetError, NotFound, StoreError
from fedbench.store import (
    ArtifactFiles,
    AuditEvent,
    Database,
    Party,
    StoredFile,
    read_table_source,
    sqlite_url,
    table_to_parquet_bytes,
)

TEST_DATABASE_URL = os.environ.get("FEDBENCH_TEST_DATABASE_URL")
"""When set (e.g. postgresql://host/fb_{sandbox}_{party}), the backend-agnostic tests run on that server."""


def _url(home: Path) -> str:
    """SQLite in `home`, or a database of this test's own on the server of FEDBENCH_TEST_DATABASE_URL."""
    if not TEST_DATABASE_URL:
        return sqlite_url(home)
    key = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    return TEST_DATABASE_URL.replace("{sandbox}", key).replace("{party}", "store")


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def db(tmp_path: Path):
    database = Database(_url(tmp_path))
    yield database
    database.close()


@pytest.fixture
def files(tmp_path: Path) -> ArtifactFiles:
    return ArtifactFiles(tmp_path / "artifacts")


# --- database ---------------------------------------------------------------------------------------------


def test_sqlite_url_points_into_home(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite:///{tmp_path}/fedbench.db"


def test_database_creates_file_with_wal_and_tables(tmp_path: Path) -> None:
    with Database(sqlite_url(tmp_path)) as db, db.engine.connect() as conn:
        assert (tmp_path / "fedbench.db").is_file()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        tables = set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
    assert {"party", "dataset", "project", "job", "task", "artifact", "audit_event"} <= tables


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as session:
        session.add(Party(name="bank-a", address="bank-a:7000"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Party(name="bank-b"))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        names = [p.name for p in session.exec(select(Party)).all()]
    assert names == ["bank-a"]


def test_timestamps_come_back_timezone_aware_utc(db: Database, tmp_path: Path) -> None:
    ts = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    with db.session() as session:
        session.add(AuditEvent(ts=ts, actor="alice", action="psi", datasets=["d1"], allowed=True))
    db.close()
    reopened = Database(_url(tmp_path))
    with reopened.session() as session:
        event = session.exec(select(AuditEvent)).one()
    reopened.close()
    assert event.ts == ts and event.ts.tzinfo is not None
    assert event.datasets == ["d1"] and event.id == 1


def test_naive_timestamp_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.session() as session:
        session.add(Party(name="p", created_at=datetime(2024, 1, 1)))


def test_bad_url_gives_store_error_with_masked_password() -> None:
    with pytest.raises(StoreError, match="not valid") as info:
        Database("this is not a url")
    assert "this is not a url" in str(info.value)
    with pytest.raises(StoreError, match="unknown database kind") as info:
        Database("nosuchdb://user:hunter2@host/db")
    assert "hunter2" not in str(info.value) and "user:***@host" in str(info.value)


def test_sqlite_in_missing_directory_gives_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="exists and is writable") as info:
        Database(sqlite_url(tmp_path / "no" / "such" / "dir"))
    assert "fedbench.db" in str(info.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_postgresql_gives_store_error() -> None:
    port = _closed_port()
    with pytest.raises(StoreError) as info:
        Database(f"postgresql://fed:s3cret@127.0.0.1:{port}/fedbench")
    message = str(info.value)
    assert "s3cret" not in message
    assert f"127.0.0.1:{port}" in message
    assert "psycopg" in message or "cannot reach" in message


# --- artifact files ---------------------------------------------------------------------------------------


def test_write_bytes_round_trip_is_content_addressed(files: ArtifactFiles) -> None:
    stored = files.write_bytes(b"hello", suffix=".txt")
    sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert stored == StoredFile(path=f"2c/{sha}.txt", sha256=sha, size=5)
    assert files.read_bytes(stored.path) == b"hello"
    assert files.absolute(stored.path) == files.root / "2c" / f"{sha}.txt"
    assert files.verify(stored)


def test_identical_content_is_stored_once_and_no_temp_file_remains(files: ArtifactFiles) -> None:
    first = files.write_bytes(b"same content")
    mtime = files.absolute(first.path).stat().st_mtime_ns
    second = files.write_bytes(b"same content")
    assert first == second
    assert files.absolute(first.path).stat().st_mtime_ns == mtime
    assert _files_under(files.root) == [files.absolute(first.path)]


def test_failed_write_leaves_nothing(files: ArtifactFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match="No space left"):
        files.write_bytes(b"data")
    assert _files_under(files.root) == []


def test_table_round_trip(files: ArtifactFiles) -> None:
    df = pd.DataFrame({"id": ["a", "b"], "x": [1.5, np.nan]}, index=[7, 9])
    stored = files.write_table(df)
    assert stored.path.endswith(".parquet")
    pd.testing.assert_frame_equal(files.read_table(stored.path), df.reset_index(drop=True))
    assert files.write_table(df) == stored


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "", ".", "C:/x", "..\\x", "a/.."])
def test_paths_escaping_the_root_are_refused(files: ArtifactFiles, bad: str) -> None:
    with pytest.raises(StoreError, match="refused"):
        files.absolute(bad)
    with pytest.raises(StoreError):
        files.read_bytes(bad)
    with pytest.raises(StoreError):
        files.delete(bad)


def test_symlink_escaping_the_root_is_refused(files: ArtifactFiles, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (files.root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StoreError, match="outside"):
        files.absolute("link/secret")


def test_corruption_is_detected(files: ArtifactFiles) -> None:
    stored = files.write_bytes(b"precious")
    files.absolute(stored.path).write_bytes(b"Precious")
    assert not files.verify(stored)
    files.absolute(stored.path).write_bytes(b"precious!")
    assert not files.verify(stored)
    assert files.write_bytes(b"precious") == stored
    assert files.verify(stored)


def test_delete_and_missing_files(files: ArtifactFiles) -> None:
    stored = files.write_bytes(b"bye")
    files.delete(stored.path)
    files.delete(stored.path)
    assert list(files.root.iterdir()) == []
    assert not files.verify(stored)
    with pytest.raises(NotFound, match=stored.path):
        files.read_bytes(stored.path)


def test_clean_temp_removes_only_leftovers(files: ArtifactFiles) -> None:
    stored = files.write_bytes(b"keep me")
    leftover = files.root / stored.path.split("/")[0] / ".tmp-crashed.part"
    leftover.write_bytes(b"half")
    assert files.clean_temp(min_age_seconds=3600) == 0
    assert files.clean_temp() == 1
    assert _files_under(files.root) == [files.absolute(stored.path)]


def test_bad_suffix_is_refused(files: ArtifactFiles) -> None:
    with pytest.raises(StoreError, match="suffix"):
        files.write_bytes(b"x", suffix="/../evil")


# --- table sources ----------------------------------------------------------------------------------------

FRAME = pd.DataFrame({"id": ["007", "8", "9"], "x": [1.0, 2.5, np.nan], "y": [0, 1, 1]})


def test_read_csv_parquet_and_bytes(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    FRAME.to_csv(csv, index=False)
    parquet = tmp_path / "t.parquet"
    FRAME.to_parquet(parquet, index=False)
    (tmp_path / "t.pq").write_bytes(parquet.read_bytes())
    (tmp_path / "t.txt").write_bytes(csv.read_bytes())

    pd.testing.assert_frame_equal(read_table_source(csv, id_column="id"), FRAME)
    pd.testing.assert_frame_equal(read_table_source(str(parquet)), FRAME)
    pd.testing.assert_frame_equal(read_table_source(tmp_path / "t.pq"), FRAME)
    pd.testing.assert_frame_equal(read_table_source(tmp_path / "t.txt", fmt="csv", id_column="id"), FRAME)
    pd.testing.assert_frame_equal(read_table_source(csv.read_bytes(), fmt="csv", id_column="id"), FRAME)
    pd.testing.assert_frame_equal(read_table_source(table_to_parquet_bytes(FRAME), fmt="parquet"), FRAME)
    assert read_table_source(csv)["id"].tolist() == [7, 8, 9]


def test_dataframe_source_is_copied() -> None:
    copy = read_table_source(FRAME)
    copy.loc[0, "x"] = 99.0
    assert FRAME.loc[0, "x"] == 1.0


def test_source_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DatasetError, match="not found") as info:
        read_table_source(missing)
    assert str(missing) in str(info.value)

    with pytest.raises(DatasetError, match="is a directory"):
        read_table_source(tmp_path)

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty") as info:
        read_table_source(empty)
    assert "empty.csv" in str(info.value)

    header_only = tmp_path / "header.csv"
    header_only.write_text("id,x\n")
    with pytest.raises(DatasetError, match="no rows"):
        read_table_source(header_only)

    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    with pytest.raises(DatasetError, match="no columns"):
        read_table_source(blank)

    weird = tmp_path / "t.xlsx"
    weird.write_bytes(b"PK")
    with pytest.raises(DatasetError, match=r"\.parquet") as info:
        read_table_source(weird)
    assert "t.xlsx" in str(info.value) and ".csv" in str(info.value)

    with pytest.raises(DatasetError, match="unknown format 'json'"):
        read_table_source(b"{}", fmt="json")
    with pytest.raises(DatasetError, match="fmt="):
        read_table_source(b"id\n1\n")

    garbage = tmp_path / "bad.parquet"
    garbage.write_bytes(b"definitely not parquet")
    with pytest.raises(DatasetError, match="not a readable parquet file") as info:
        read_table_source(garbage)
    assert "bad.parquet" in str(info.value) and "\n" not in str(info.value)

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DatasetError, match="not a readable csv file.*Expected 2 fields"):
        read_table_source(ragged)

    with pytest.raises(DatasetError, match="cannot read a table from a int"):
        read_table_source(42)


def test_csv_bytes_round_trip_through_buffer() -> None:
    buffer = io.StringIO()
    FRAME.to_csv(buffer, index=False)
    assert len(read_table_source(buffer.getvalue().encode(), fmt=".CSV")) == 3
