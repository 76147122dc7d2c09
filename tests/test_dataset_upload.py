"""Dataset upload through a real node: every bad input gets its error, and nothing is left in the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fedbench
from fedbench.errors import DatasetError, NotFound


@pytest.fixture
def wb(fresh_federation):
    return fedbench.connect(home=fresh_federation.home("guest").root)


def _good() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b", "c"], "y": [0, 1, 0], "x1": [0.1, 0.2, np.nan], "x2": [1, 2, 3]})


def _artifact_files(federation) -> list:
    root = federation.home("guest").artifacts_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_csv_then_list_preview_and_summary(wb, tmp_path):
    path = tmp_path / "t.csv"
    _good().to_csv(path, index=False)
    ds = wb.datasets.upload(path, name="t", id_column="id", label_column="y")
    assert ds.info.n_rows == 3 and ds.info.features == ["x1", "x2"]
    assert [d.name for d in wb.datasets.list()] == ["t"]
    assert list(ds.preview(2)["id"]) == ["a", "b"]
    assert ds.summary().loc["x1", "missing"] == 1
    assert "t" in ds._repr_html_()


BAD_INPUTS = [
    ("missing ids", lambda: _good().assign(id=["a", None, "c"]), {}, "missing"),
    ("duplicate ids", lambda: _good().assign(id=["a", "a", "c"]), {}, "duplicate"),
    ("unknown id column", _good, {"id_column": "customer"}, "customer"),
    ("unknown label column", _good, {"label_column": "target"}, "target"),
    ("non-numeric feature", lambda: _good().assign(city=["x", "y", "z"]), {}, "city"),
    ("empty table", lambda: _good().iloc[0:0], {}, "empty|no rows"),
]


@pytest.mark.parametrize(("case", "make", "override", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_upload_is_refused_and_leaves_nothing(wb, fresh_federation, case, make, override, message):
    args = {"name": "bad", "id_column": "id", "label_column": "y", **override}
    with pytest.raises(DatasetError, match=message):
        wb.datasets.upload(make(), **args)
    assert wb.datasets.list() == []
    assert _artifact_files(fresh_federation) == []
    with pytest.raises(NotFound):
        wb.datasets.get("bad")


def test_file_errors_and_taken_name(wb, fresh_federation, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        wb.datasets.upload(tmp_path / "nope.csv", name="n", id_column="id")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        wb.datasets.upload(tmp_path / "empty.csv", name="n", id_column="id")
    assert _artifact_files(fresh_federation) == []
    wb.datasets.upload(_good(), name="taken", id_column="id", label_column="y")
    with pytest.raises(DatasetError, match="taken"):
        wb.datasets.upload(_good(), name="taken", id_column="id", label_column="y")
    assert [d.name for d in wb.datasets.list()] == ["taken"]
