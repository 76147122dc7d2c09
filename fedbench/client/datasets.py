"""Datasets as an analyst sees them: `wb.datasets.upload(...)`, `.list()`, `.get(name).preview()`."""

from __future__ import annotations

import html
import io
import os
from typing import Any, Literal

import pandas as pd

from fedbench.client.control import NodeClient
from fedbench.dataset_info import DatasetInfo
from fedbench.errors import DatasetError

__all__ = ["Dataset", "Datasets"]


def _table(data: bytes | bytearray) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(bytes(data)))


class Dataset:
    """One registered dataset of our party: its description, and its rows on request."""

    def __init__(self, node: NodeClient, info: DatasetInfo) -> None:
        self._node = node
        self.info = info

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.info.name

    def preview(self, n: int = 10) -> pd.DataFrame:
        """The first `n` rows."""
        return _table(self._node.call("datasets.preview", name=self.name, n=n))

    def summary(self) -> pd.DataFrame:
        """Per-column statistics: count, missing rate, mean, std, quantiles, unique values."""
        return _table(self._node.call("datasets.summary", name=self.name)).set_index("column")

    def to_pandas(self) -> pd.DataFrame:
        """The whole table (ids as strings; whole-number columns as integers, other features as floats)."""
        return _table(self._node.download("datasets.load", name=self.name))

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, rows={self.info.n_rows}, features={len(self.info.features)})"

    def _repr_html_(self) -> str:
        card: str = self.info._repr_html_()
        try:
            preview = self.preview(5).to_html(max_cols=12, classes="fb-preview", border=0)
        except Exception as exc:  # a preview is a nicety: the card still shows
            preview = f"<i>preview unavailable: {html.escape(str(exc))}</i>"
        return f'<div class="fb-dataset">{card}{preview}</div>'


class Datasets:
    """The datasets of our party, through our node."""

    def __init__(self, node: NodeClient) -> None:
        self._node = node

    def upload(
        self,
        source: str | os.PathLike[str] | pd.DataFrame,
        *,
        name: str,
        id_column: str | None = None,
        label_column: str | None = None,
        not_numbers: Literal["refuse", "missing", "drop"] = "refuse",
    ) -> Dataset:
        """Register a CSV or parquet file or a DataFrame; the node validates it and stores it.

        `id_column` must be given: nothing is guessed (the error lists the columns that could be the ID).
        Values that are not numbers in a numeric column (e.g. a stray "unknown") are refused by default, with
        their column, values and rows; `not_numbers="missing"` treats them as missing, `"drop"` drops their rows.
        """
        from fedbench.store.datasets import find_not_numbers, fix_not_numbers, missing_id_message
        from fedbench.store.tables import read_table_source, table_to_parquet_bytes

        table = read_table_source(source, id_column=id_column)
        if id_column is None:
            raise DatasetError(missing_id_message(table))
        if not_numbers != "refuse":
            problems = find_not_numbers(table, exclude=(id_column,))
            table = fix_not_numbers(table, problems, not_numbers)
        answer = self._node.upload(
            "datasets.register",
            table_to_parquet_bytes(table),
            name=name,
            id_column=id_column,
            label_column=label_column,
        )
        return Dataset(self._node, DatasetInfo.model_validate(answer))

    def list(self) -> list[DatasetInfo]:
        """Every dataset of our party."""
        return [DatasetInfo.model_validate(item) for item in self._node.call("datasets.list")]

    def get(self, name: str) -> Dataset:
        """One dataset by name (NotFound lists the known names)."""
        return Dataset(self._node, DatasetInfo.model_validate(self._node.call("datasets.get", name=name)))

    def delete(self, name: str) -> None:
        """Remove a dataset from the registry."""
        self._node.call("datasets.delete", name=name)

    def to_frame(self) -> pd.DataFrame:
        """The list as a table: one row per dataset."""
        rows: list[dict[str, Any]] = [
            {
                "name": d.name,
                "rows": d.n_rows,
                "id_column": d.id_column,
                "label_column": d.label_column,
                "features": len(d.features),
                "fingerprint": d.fingerprint[:12],
                "created_at": d.created_at,
            }
            for d in self.list()
        ]
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        if frame.empty:
            return "<i>no datasets yet: wb.datasets.upload('file.csv', name=..., id_column=...)</i>"
        return str(frame.to_html(index=False, border=0, classes="fb-datasets"))
