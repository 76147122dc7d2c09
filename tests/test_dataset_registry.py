"""Tests of the dataset registry: validation before writing, nothing left behind on failure, round trips."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from fedbench.errors import DatasetError, NotFound, StoreError
from fedbench.store import (
    ArtifactFiles,
    Database,
    Dataset,
    DatasetInfo,
    DatasetRegistry,
    read_table_source,
    sqlite_url,
    table_fingerprint,
)

TEST_DATABASE_URL = os.environ.get("FEDBENCH_TEST_DATABASE_URL")
"""When set (e.g. postgresql://host/fb_{sandbox}_{party}), the registry's metadata goes to that server."""


def _url(home: Path) -> str:
    """SQLite in `home`, or a database of this test's own on the server of FEDBENCH_TEST_DATABASE_URL."""
    if not TEST_DATABASE_URL:
        return sqlite_url(home)
    key = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    return TEST_DATABASE_URL.replace("{sandbox}", key).replace("{party}", "registry")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def registry(home: Path):
    db = Database(_url(home))
    yield DatasetRegistry(db, ArtifactFiles(home / "artifacts"))
    db.close()


def _stored_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "artifacts").rglob("*") if p.is_file())


def _rows(home: Path) -> list[Dataset]:
    db = Database(_url(home))
    try:
        with db.session() as session:
            return list(session.exec(select(Dataset)).all())
    finally:
        db.close()


def _assert_nothing_stored(home: Path) -> None:
    assert _rows(home) == []
    assert _stored_files(home) == []


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cust": [101, 102, 103, 104],
            "age": [31, 45, 27, 60],
            "income": [5200.5, np.nan, 3100.0, 8000.25],
            "vip": [True, False, False, True],
            "y": [0, 1, 0, 1],
        }
    )


# --- registration and round trips -------------------------------------------------------------------------


def test_register_and_load_round_trip(registry: DatasetRegistry, home: Path) -> None:
    info = registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    assert info.name == "customers" and info.owner == "local"
    assert info.features == ["age", "income", "vip"]
    assert info.n_rows == 4 and info.label_column == "y"
    assert info.created_at.tzinfo is not None
    assert info.dtypes["income"] == "float64" and info.dtypes["vip"] == "int64"

    df = registry.load("customers")
    assert list(df.columns) == ["cust", "age", "income", "vip", "y"]
    assert df["cust"].tolist() == ["101", "102", "103", "104"]
    assert df["vip"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert np.isnan(df["income"].iloc[1])
    assert df["income"].dtype == np.float64, "a column with missing values is float (NaN)"
    assert all(df[c].dtype == np.int64 for c in ["age", "vip", "y"]), "whole numbers stay whole (#15)"
    assert table_fingerprint(df, "cust", "y") == info.fingerprint
    assert registry.get("customers") == info
    assert registry.list() == [info]
    assert "customers" in registry
    assert len(_stored_files(home)) == 1
    assert _stored_files(home)[0].suffix == ".parquet"


def test_integral_float_ids_have_no_decimal_suffix(registry: DatasetRegistry) -> None:
    df = pd.DataFrame({"id": [1.0, 2.0, 30.0], "x": [1, 2, 3]})
    registry.register(df, name="floats", id_column="id")
    assert registry.load("floats")["id"].tolist() == ["1", "2", "30"]


def test_string_ids_keep_leading_zeros_and_no_label(registry: DatasetRegistry) -> None:
    df = pd.DataFrame({"id": ["007", "08"], "x": [1.0, 2.0]})
    info = registry.register(df, name="host-side", id_column="id", owner="bank-b")
    assert info.label_column is None and info.owner == "bank-b"
    assert registry.load("host-side")["id"].tolist() == ["007", "08"]


def test_register_from_csv_parquet_and_bytes_sources(registry: DatasetRegistry, tmp_path: Path) -> None:
    frame = _frame()
    csv = tmp_path / "c.csv"
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "c.parquet"
    frame.to_parquet(parquet, index=False)
    from_csv = registry.register(read_table_source(csv), name="from-csv", id_column="cust", label_column="y")
    from_pq = registry.register(
        read_table_source(parquet), name="from-pq", id_column="cust", label_column="y"
    )
    from_bytes = registry.register(
        read_table_source(csv.read_bytes(), fmt="csv"), name="from-bytes", id_column="cust", label_column="y"
    )
    assert from_csv.fingerprint == from_pq.fingerprint == from_bytes.fingerprint


def test_registry_reopened_from_same_files_sees_the_same_datasets(home: Path) -> None:
    db = Database(_url(home))
    first = DatasetRegistry(db, ArtifactFiles(home / "artifacts"))
    info = first.register(_frame(), name="customers", id_column="cust", label_column="y")
    before = first.load("customers")
    db.close()

    db2 = Database(_url(home))
    second = DatasetRegistry(db2, ArtifactFiles(home / "artifacts"))
    assert second.list() == [info]
    pd.testing.assert_frame_equal(second.load("customers"), before)
    db2.close()


def test_preview_and_summary(registry: DatasetRegistry) -> None:
    registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    assert len(registry.preview("customers", n=2)) == 2
    summary = registry.summary("customers")
    expected = ["dtype", "count", "missing", "missing_rate", "mean", "std"]
    expected += ["min", "25%", "50%", "75%", "max", "unique"]
    assert list(summary.columns) == expected
    assert list(summary.index) == ["cust", "age", "income", "vip", "y"]
    income = summary.loc["income"]
    assert income["count"] == 3 and income["missing"] == 1 and income["missing_rate"] == pytest.approx(0.25)
    assert income["min"] == 3100.0 and income["max"] == 8000.25
    assert income["mean"] == pytest.approx((5200.5 + 3100.0 + 8000.25) / 3)
    assert summary.loc["cust", "unique"] == 4 and np.isnan(summary.loc["cust", "mean"])


def test_info_json_round_trip_and_html(registry: DatasetRegistry) -> None:
    info = registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    plain = info.model_dump(mode="json")
    text = json.dumps(plain)
    assert isinstance(plain["created_at"], str)
    assert DatasetInfo.model_validate_json(text) == info
    html = info._repr_html_()
    assert "customers" in html and info.fingerprint[:12] in html and "4 rows" in html


def test_html_truncates_long_feature_lists() -> None:
    features = [f"f{i}" for i in range(30)]
    info = DatasetInfo(
        name="wide",
        owner="local",
        id_column="id",
        label_column=None,
        features=features,
        dtypes={},
        n_rows=1,
        fingerprint="ab" * 32,
        created_at="2024-01-01T00:00:00Z",  # type: ignore[arg-type]
    )
    html = info._repr_html_()
    assert "30 features" in html and "f7" in html and "f29" not in html and "+22" in html


# --- validation: every bad input gives its error and leaves nothing behind --------------------------------

Case = tuple[Callable[[pd.DataFrame], pd.DataFrame], dict[str, object], list[str]]

BAD_INPUTS: dict[str, Case] = {
    "invalid name": (lambda d: d, {"name": "bad name!"}, ["'bad name!'"]),
    "no rows": (lambda d: d.iloc[0:0], {}, ["no rows"]),
    "unknown id column": (lambda d: d, {"id_column": "nope"}, ["'nope'", "'cust'", "'income'"]),
    "unknown label column": (lambda d: d, {"label_column": "target"}, ["'target'", "'y'"]),
    "id equals label": (lambda d: d, {"label_column": "cust"}, ["'cust'", "both"]),
    "missing ids": (
        lambda d: d.assign(cust=[101, None, 103, None]),
        {},
        ["'cust'", "2 missing", "data rows 2, 4"],
    ),
    "empty-string ids": (lambda d: d.assign(cust=["a", "", "c", "d"]), {}, ["'cust'", "1 missing"]),
    "duplicate ids": (
        lambda d: d.assign(cust=["a", "b", "a", "b"]),
        {},
        ["'cust'", "2 duplicated ids", "'a'", "'b'", "drop_duplicates"],
    ),
    "int and str ids collide": (lambda d: d.assign(cust=[1, "1", 2, 3]), {}, ["duplicated", "'1'"]),
    "label missing": (lambda d: d.assign(y=[0, 1, None, 1]), {}, ["'y'", "1 missing", "data row 3"]),
    "label not numeric": (lambda d: d.assign(y=["no", "yes", "no", "yes"]), {}, ["'y'", "not numeric"]),
    "non-numeric features": (
        lambda d: d.assign(city=["a", "b", "c", "d"], when=pd.to_datetime(["2024-01-01"] * 4)),
        {},
        ["'city'", "'when'", "datetime64", "get_dummies", "drop"],
    ),
    "complex feature": (lambda d: d.assign(z=np.array([1j, 2, 3, 4])), {}, ["'z'", "complex"]),
    "non-text column names": (
        lambda d: d.rename(columns={"age": 0}),
        {},
        ["0", "column names must be text"],
    ),
    "duplicate column names": (
        lambda d: d.set_axis(["cust", "age", "age", "vip", "y"], axis=1),
        {},
        ["'age'", "more than once"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gives_dataset_error_and_stores_nothing(
    registry: DatasetRegistry, home: Path, case: str
) -> None:
    transform, overrides, expected = BAD_INPUTS[case]
    kwargs: dict[str, Any] = {"name": "customers", "id_column": "cust", "label_column": "y"}
    kwargs.update(overrides)
    with pytest.raises(DatasetError) as info:
        registry.register(transform(_frame()), **kwargs)
    for needle in expected:
        assert needle in str(info.value), f"{needle!r} not in {str(info.value)!r}"
    _assert_nothing_stored(home)


def test_not_a_dataframe_is_refused(registry: DatasetRegistry, home: Path) -> None:
    with pytest.raises(DatasetError, match="expected a pandas DataFrame, got dict"):
        registry.register({"id": [1]}, name="d", id_column="id")
    _assert_nothing_stored(home)


def test_name_taken_is_refused_and_existing_dataset_untouched(registry: DatasetRegistry, home: Path) -> None:
    info = registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    files_before = _stored_files(home)
    changed = _frame().assign(age=[1, 2, 3, 4])
    with pytest.raises(DatasetError, match="'customers' is already taken.*choose another name"):
        registry.register(changed, name="customers", id_column="cust", label_column="y")
    assert _stored_files(home) == files_before
    assert [r.name for r in _rows(home)] == ["customers"]
    assert registry.get("customers") == info


def test_name_taken_concurrently_removes_the_new_file(
    registry: DatasetRegistry, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    files_before = _stored_files(home)
    monkeypatch.setattr(registry, "_row", lambda name: None)
    changed = _frame().assign(age=[1, 2, 3, 4])
    with pytest.raises(DatasetError, match="was taken while registering"):
        registry.register(changed, name="customers", id_column="cust", label_column="y")
    monkeypatch.undo()
    assert _stored_files(home) == files_before
    assert len(_rows(home)) == 1
    assert registry.load("customers")["age"].tolist() == [31.0, 45.0, 27.0, 60.0]


def test_failed_insert_keeps_a_file_shared_with_another_dataset(
    registry: DatasetRegistry, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    monkeypatch.setattr(registry, "_row", lambda name: None)
    with pytest.raises(DatasetError, match="was taken"):
        registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    monkeypatch.undo()
    assert len(_stored_files(home)) == 1
    assert len(registry.load("customers")) == 4


def test_identical_content_shares_one_file_until_the_last_delete(
    registry: DatasetRegistry, home: Path
) -> None:
    a = registry.register(_frame(), name="a", id_column="cust", label_column="y")
    b = registry.register(_frame(), name="b", id_column="cust", label_column="y")
    assert a.fingerprint == b.fingerprint
    assert len(_stored_files(home)) == 1
    registry.delete("a")
    assert len(_stored_files(home)) == 1
    assert len(registry.load("b")) == 4
    registry.delete("b")
    _assert_nothing_stored(home)
    assert list((home / "artifacts").iterdir()) == []


# --- lookups and corruption -------------------------------------------------------------------------------


def test_unknown_names_list_the_known_ones(registry: DatasetRegistry) -> None:
    with pytest.raises(NotFound, match="no dataset is registered yet"):
        registry.get("ghost")
    registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    for call in (registry.get, registry.load, registry.delete, registry.summary):
        with pytest.raises(NotFound, match="'ghost' not found; known datasets: 'customers'"):
            call("ghost")


def test_corrupted_or_missing_file_is_detected(registry: DatasetRegistry, home: Path) -> None:
    registry.register(_frame(), name="customers", id_column="cust", label_column="y")
    (path,) = _stored_files(home)
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match="artifact corrupted"):
        registry.load("customers")
    path.unlink()
    with pytest.raises(StoreError, match="artifact missing"):
        registry.preview("customers")
    path.write_bytes(original)
    assert len(registry.load("customers")) == 4


# --- fingerprint ------------------------------------------------------------------------------------------


def test_fingerprint_depends_on_content_only() -> None:
    base = _frame()
    fp = table_fingerprint(base, "cust", "y")
    same = base.copy()
    same.index = [10, 20, 30, 40]
    same["age"] = same["age"].astype("float64")
    same["cust"] = same["cust"].astype(str)
    same["vip"] = same["vip"].astype(int)
    assert table_fingerprint(same, "cust", "y") == fp

    other_nan = base.copy()
    payload = np.array([0x7FF8000000000001], dtype="<u8").view("<f8")[0]
    other_nan.loc[1, "income"] = payload
    assert table_fingerprint(other_nan, "cust", "y") == fp

    signed_zero = base.assign(age=[0.0, 45, 27, 60])
    assert table_fingerprint(signed_zero.assign(age=[-0.0, 45, 27, 60]), "cust", "y") == table_fingerprint(
        signed_zero, "cust", "y"
    )


def test_fingerprint_changes_when_anything_changes() -> None:
    base = _frame()
    fp = table_fingerprint(base, "cust", "y")
    changed_value = base.copy()
    changed_value.loc[2, "income"] = 3100.0000001
    variants = [
        changed_value,
        base.assign(cust=[101, 102, 103, 105]),
        base.rename(columns={"age": "years"}),
        base[["cust", "income", "age", "vip", "y"]],
        base.iloc[:3],
    ]
    fingerprints = {table_fingerprint(v, "cust", "y") for v in variants}
    fingerprints.add(table_fingerprint(base, "cust", None))
    assert fp not in fingerprints and len(fingerprints) == len(variants) + 1


def test_fingerprint_is_pinned_to_its_documented_serialisation() -> None:
    def text(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    canonical = b"fedbench-table-fingerprint-v1\x00" + struct.pack("<QQ", 2, 3)
    canonical += text("id") + text("x") + text("y") + text("id") + text("y") + b"\x01"
    canonical += text("a") + text("b")
    canonical += struct.pack("<d", 1.5) + struct.pack("<Q", 0x7FF8000000000000)
    canonical += struct.pack("<dd", 0.0, 1.0)
    expected = hashlib.sha256(canonical).hexdigest()
    assert expected == "732921752d382bff894f65e9b1c60ffccd0f257f48649a454acba4853be2bd4a"

    df = pd.DataFrame({"id": ["a", "b"], "x": [1.5, np.nan], "y": [0, 1]})
    assert table_fingerprint(df, "id", "y") == expected
