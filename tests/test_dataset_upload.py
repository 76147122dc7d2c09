"""Dataset upload through a real node: every bad input gets its error, and nothing is left in the store.

The tests use the suite's shared sandbox (this module's datasets are named `upload_*`): "nothing is left" is
checked as the guest's registry and artifact files being the same after a refused upload as before it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Federation

import fedbench
from fedbench.errors import DatasetError, NotFound


@pytest.fixture(scope="module")
def federation_of_module(shared_sandbox: Federation) -> Federation:
    """The nodes of this module's uploads (only the guest's store is used)."""
    return shared_sandbox


@pytest.fixture
def wb(federation_of_module):
    return fedbench.connect(home=federation_of_module.home("guest").root)


def _good() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b", "c"], "y": [0, 1, 0], "x1": [0.1, 0.2, np.nan], "x2": [1, 2, 3]})


def _artifact_files(federation: Federation) -> set[Path]:
    root = federation.home("guest").artifacts_dir
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _names(wb) -> list[str]:
    return sorted(d.name for d in wb.datasets.list())


def test_upload_csv_then_list_preview_and_summary(wb, tmp_path):
    path = tmp_path / "t.csv"
    _good().to_csv(path, index=False)
    before = _names(wb)
    ds = wb.datasets.upload(path, name="upload_t", id_column="id", label_column="y")
    assert ds.info.n_rows == 3 and ds.info.features == ["x1", "x2"]
    assert _names(wb) == sorted([*before, "upload_t"])
    assert list(ds.preview(2)["id"]) == ["a", "b"]
    assert ds.summary().loc["x1", "missing"] == 1
    assert "upload_t" in ds._repr_html_()


BAD_INPUTS = [
    ("missing ids", lambda: _good().assign(id=["a", None, "c"]), {}, "missing"),
    ("duplicate ids", lambda: _good().assign(id=["a", "a", "c"]), {}, "duplicate"),
    ("unknown id column", _good, {"id_column": "customer"}, "customer"),
    ("unknown label column", _good, {"label_column": "target"}, "target"),
    ("non-numeric feature", lambda: _good().assign(city=["x", "y", "z"]), {}, "city"),
    ("empty table", lambda: _good().iloc[0:0], {}, "empty|no rows"),
]


@pytest.mark.parametrize(("case", "make", "override", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_upload_is_refused_and_leaves_nothing(wb, federation_of_module, case, make, override, message):
    names, files = _names(wb), _artifact_files(federation_of_module)
    args = {"name": "bad", "id_column": "id", "label_column": "y", **override}
    with pytest.raises(DatasetError, match=message):
        wb.datasets.upload(make(), **args)
    assert _names(wb) == names
    assert _artifact_files(federation_of_module) == files
    with pytest.raises(NotFound):
        wb.datasets.get("bad")


def test_file_errors_and_taken_name(wb, federation_of_module, tmp_path):
    names, files = _names(wb), _artifact_files(federation_of_module)
    with pytest.raises(DatasetError, match="not found"):
        wb.datasets.upload(tmp_path / "nope.csv", name="n", id_column="id")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        wb.datasets.upload(tmp_path / "empty.csv", name="n", id_column="id")
    assert _artifact_files(federation_of_module) == files
    wb.datasets.upload(_good(), name="upload_taken", id_column="id", label_column="y")
    with pytest.raises(DatasetError, match="taken"):
        wb.datasets.upload(_good(), name="upload_taken", id_column="id", label_column="y")
    assert _names(wb) == sorted([*names, "upload_taken"])
