"""A party's design matrix for a linear model: which columns are features, how they are standardised, batches.

Each party standardises its own features with the mean and standard deviation of its training rows; the
`Design` is stored in the model so scoring applies exactly the same transform. The guest's design adds the
intercept column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedbench.errors import FedbenchError

__all__ = ["FIXED_FRAC_BITS", "FIXED_BITS", "Design", "ModelDataError", "batches", "fixed_point", "sigmoid"]

FIXED_FRAC_BITS = 16
"""Fractional bits of a standardised feature inside the encrypted matrix products."""
FIXED_BITS = 24
"""Bits of a standardised feature as a non-negative integer (offset by 2^23): |x| must stay below 128."""


class ModelDataError(FedbenchError):
    """A table does not fit the model: missing or non-numeric feature columns, or missing values."""

    code = "model_data"


@dataclass
class Design:
    """Feature names, their training mean and standard deviation, whether an intercept column is added, and
    what a missing value becomes ("mean": the training mean; "error": refused)."""

    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    intercept: bool
    missing: str = "error"

    @classmethod
    def fit(cls, table: pd.DataFrame, exclude: set[str], intercept: bool, missing: str = "error") -> Design:
        """The numeric columns of `table` other than `exclude`, with their mean and standard deviation."""
        features = [
            str(c)
            for c in table.columns
            if c not in exclude and pd.api.types.is_numeric_dtype(table[c].dtype)
        ]
        values = _values(table, features, missing)
        present = ~np.isnan(values)
        if len(values) and not present.any(axis=0).all():
            empty = [f for f, ok in zip(features, present.any(axis=0), strict=True) if not ok]
            raise ModelDataError(f"feature columns {empty} have no values at all; drop them")
        mean = np.nanmean(values, axis=0) if len(values) else np.zeros(len(features))
        std = np.nanstd(values, axis=0) if len(values) else np.ones(len(features))
        std = np.where(std > 0, std, 1.0)
        return cls(features, mean, std, intercept, missing)

    @property
    def width(self) -> int:
        """Columns of the matrix: the features, plus one for the intercept."""
        return len(self.features) + int(self.intercept)

    def matrix(self, table: pd.DataFrame) -> np.ndarray:
        """The standardised features of `table` (and a column of ones last, for the intercept)."""
        x = (_values(table, self.features, self.missing) - self.mean) / self.std
        x[np.isnan(x)] = 0.0
        if self.intercept:
            x = np.hstack([x, np.ones((len(x), 1))])
        return x

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "intercept": self.intercept,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Design:
        return cls(
            [str(f) for f in data["features"]],
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["std"], dtype=np.float64),
            bool(data["intercept"]),
            str(data.get("missing", "error")),
        )


def _values(table: pd.DataFrame, features: list[str], missing: str) -> np.ndarray:
    absent = [f for f in features if f not in table.columns]
    if absent:
        raise ModelDataError(
            f"the table lacks the model's feature columns {absent}; it has {list(table.columns)}"
        )
    frame = table[features]
    bad = [f for f in features if not pd.api.types.is_numeric_dtype(frame[f].dtype)]
    if bad:
        raise ModelDataError(
            f"feature columns {bad} are not numeric; encode them first (component preprocess)"
        )
    values = frame.to_numpy(dtype=np.float64)
    if missing == "error" and np.isnan(values).any():
        holes = [f for f in features if frame[f].isna().any()]
        raise ModelDataError(
            f"feature columns {holes} have missing values; fill them first (component preprocess) "
            "or set the param missing to 'mean'"
        )
    return values


def batches(rows: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Row positions of each mini-batch: one shuffle by `seed`, then consecutive slices (0: one batch of all)."""
    order = np.random.default_rng(seed).permutation(rows)
    size = rows if batch_size <= 0 or batch_size >= rows else batch_size
    return [np.sort(order[i : i + size]) for i in range(0, rows, max(size, 1))]


def fixed_point(x: np.ndarray) -> np.ndarray:
    """Standardised features as non-negative integers round(x * 2^16) + 2^23, for the packed products."""
    clipped = np.clip(x, -127.0, 127.0)
    return (np.rint(clipped * 2.0**FIXED_FRAC_BITS).astype(np.int64) + (1 << (FIXED_BITS - 1))).astype(
        np.int64
    )


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
