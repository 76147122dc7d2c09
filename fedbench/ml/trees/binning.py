"""Quantile bins per feature: fitted on the training rows, kept for scoring new rows, missing values apart.

A feature's bins are given by its cut points c_1 < ... < c_m (m < bins), each one of its training values: a
value x falls in bin j = #{c_i <= x}, so bin j holds c_j <= x < c_{j+1} and a split "bins 0..k go left" is
the rule x < c_{k+1}, as in XGBoost. A missing value goes to its own slot, `missing_bin` (= `bins`, the same for
every feature), so each split can learn which way missing values go. In the federated version each party bins
its own features and keeps its cut points to itself: the other parties see only bin indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.ml.trees.errors import TreeDataError, TreeModelError

__all__ = ["Binner", "as_matrix"]


def as_matrix(x: Any, what: str = "x") -> np.ndarray:
    """`x` as a 2-D float64 array (NaN for missing), or `TreeDataError` saying why it is not one."""
    try:
        matrix = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TreeDataError(f"{what} must hold numbers only (encode text columns first): {exc}") from None
    if matrix.ndim != 2:
        raise TreeDataError(
            f"{what} must be a table of rows and features, got an array of shape {matrix.shape}"
        )
    return matrix


def _cut_points(values: np.ndarray, bins: int) -> np.ndarray:
    """At most bins - 1 cut points of one feature's present values: each distinct value but the smallest if
    there are few, else the values at ranks i * n / bins (i = 1 .. bins - 1), each starting its bin, as the
    quantile summary of XGBoost's hist method places them. Tied values never straddle a cut."""
    distinct = np.unique(values)
    if len(distinct) <= bins:
        return distinct[1:]
    ordered = np.sort(values)
    ranks = np.arange(1, bins) * len(ordered) // bins
    cuts = np.unique(ordered[ranks])
    return cuts[cuts > distinct[0]]


@dataclass(frozen=True)
class Binner:
    """The cut points of each feature (fitted once on training rows) and the bin index of any row."""

    bins: int
    edges: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, x: Any, bins: int) -> Binner:
        """Cut points of every column of `x` from its present (non-NaN) training values."""
        matrix = as_matrix(x)
        edges = []
        for column in matrix.T:
            present = column[~np.isnan(column)]
            edges.append(_cut_points(present, bins) if len(present) else np.empty(0))
        return cls(bins, tuple(edges))

    @property
    def features(self) -> int:
        """Number of features binned."""
        return len(self.edges)

    @property
    def missing_bin(self) -> int:
        """The slot of missing values, the same for every feature (one past the largest bin)."""
        return self.bins

    @property
    def bin_counts(self) -> np.ndarray:
        """Bins of present values per feature (cut points + 1); a split after bin k needs k < this."""
        return np.array([len(e) + 1 for e in self.edges], dtype=np.int64)

    @property
    def dtype(self) -> type[np.unsignedinteger[Any]]:
        """uint8 while every slot (missing included) fits in a byte, else uint16."""
        return np.uint8 if self.bins < 256 else np.uint16

    def transform(self, x: Any) -> np.ndarray:
        """The bin index of every value of `x` (rows x features), `missing_bin` where a value is missing."""
        matrix = as_matrix(x)
        if matrix.shape[1] != self.features:
            raise TreeDataError(
                f"the model was trained on {self.features} features but the rows have {matrix.shape[1]}; "
                "pass the same columns in the same order"
            )
        codes = np.empty(matrix.shape, dtype=self.dtype)
        for f, cuts in enumerate(self.edges):
            column = matrix[:, f]
            codes[:, f] = np.where(
                np.isnan(column), self.missing_bin, np.searchsorted(cuts, column, side="right")
            )
        return codes

    def threshold(self, feature: int, bin: int) -> float:
        """The value a split after `bin` compares with: x < threshold goes left (inf: every present value)."""
        cuts = self.edges[feature]
        return float(cuts[bin]) if bin < len(cuts) else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"bins": self.bins, "edges": [[float(v) for v in e] for e in self.edges]}

    @classmethod
    def from_dict(cls, data: Any) -> Binner:
        """The binner of `to_dict`, checked: cut points strictly increasing, fewer than `bins` per feature."""
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("bins"), int)
            or not isinstance(data.get("edges"), list)
        ):
            raise TreeModelError("the model's binner must be a dict with an int 'bins' and a list 'edges'")
        bins = int(data["bins"])
        edges = []
        for f, cuts in enumerate(data["edges"]):
            try:
                values = np.asarray(cuts, dtype=np.float64)
            except (TypeError, ValueError):
                raise TreeModelError(f"the model's cut points of feature {f} are not numbers") from None
            if values.ndim != 1 or len(values) >= max(bins, 1) or np.any(np.diff(values) <= 0):
                raise TreeModelError(
                    f"the model's cut points of feature {f} must be fewer than {bins} and strictly increasing"
                )
            edges.append(values)
        if not 2 <= bins <= 1024:
            raise TreeModelError(f"the model's binner has {bins} bins; 2 to 1024 are allowed")
        return cls(bins, tuple(edges))
