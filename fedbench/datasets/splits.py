"""Split one table into what several parties would hold, to stage vertical and horizontal federated demos.

A vertical split gives every party some of the columns of partly overlapping row sets (finding the common ids
is then the PSI step's job); a horizontal split gives every party all columns of disjoint row sets. Rows are
shuffled on every side so that row order never reveals the join or the label.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fedbench.datasets.credit import HOST_FEATURES, ID_COLUMN, LABEL_COLUMN, make_credit


def _check_columns(df: pd.DataFrame, id_column: str, label_column: str) -> list[str]:
    """Return the feature columns of `df` after checking that its id and label columns are usable."""
    for role, name in (("id_column", id_column), ("label_column", label_column)):
        if name not in df.columns:
            raise ValueError(f"{role} {name!r} is not a column of the table (columns: {list(df.columns)})")
    if id_column == label_column:
        raise ValueError(f"id_column and label_column must differ, both are {id_column!r}")
    if df[id_column].isna().any():
        raise ValueError(f"id column {id_column!r} has missing values")
    if df[id_column].duplicated().any():
        duplicates = df.loc[df[id_column].duplicated(), id_column].head(3).tolist()
        raise ValueError(f"id column {id_column!r} has duplicate ids, for example {duplicates}")
    return [c for c in df.columns if c not in (id_column, label_column)]


def _pick_host_features(features: list[str], host_features: Sequence[str] | None) -> list[str]:
    """Resolve `host_features` (None means the default) against the feature columns, in column order."""
    if host_features is None:
        chosen = (
            set(HOST_FEATURES) if set(HOST_FEATURES) <= set(features) else set(features[len(features) // 2 :])
        )
    else:
        if isinstance(host_features, str):
            raise ValueError(f"host_features must be a list of column names, not a string: {host_features!r}")
        unknown = [name for name in host_features if name not in features]
        if unknown:
            raise ValueError(
                f"host_features names columns that are not features of the table: {unknown} "
                "(the id and label columns cannot be host features)"
            )
        chosen = set(host_features)
    host = [name for name in features if name in chosen]
    if not host:
        raise ValueError("the host must get at least one feature, host_features is empty")
    if len(host) == len(features):
        raise ValueError("the guest must keep at least one feature, host_features lists them all")
    return host


def vertical_split(
    df: pd.DataFrame,
    *,
    id_column: str = ID_COLUMN,
    label_column: str = LABEL_COLUMN,
    host_features: list[str] | None = None,
    overlap: float = 0.8,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `df` into (guest, host): guest gets id, label and its features, host gets id and the others.

    A fraction `overlap` of the ids is on both sides, the rest is divided evenly between guest-only and
    host-only rows. Default host features: `HOST_FEATURES` for credit data, else the second half of columns.
    """
    features = _check_columns(df, id_column, label_column)
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Real) or not 0 < overlap <= 1:
        raise ValueError(f"overlap must be a number in (0, 1], got {overlap!r}")
    host = _pick_host_features(features, host_features)
    guest = [name for name in features if name not in host]

    rng = np.random.default_rng(seed)
    n = len(df)
    n_both = round(overlap * n)
    n_guest_only = (n - n_both + 1) // 2
    order = rng.permutation(n)
    guest_rows = order[: n_both + n_guest_only]
    host_rows = np.concatenate([order[:n_both], order[n_both + n_guest_only :]])
    guest_df = df.iloc[rng.permutation(guest_rows)][[id_column, label_column, *guest]]
    host_df = df.iloc[rng.permutation(host_rows)][[id_column, *host]]
    return guest_df.reset_index(drop=True), host_df.reset_index(drop=True)


def horizontal_split(
    df: pd.DataFrame,
    *,
    n_parties: int = 2,
    seed: int = 0,
    skew: float = 0.0,
    label_column: str = LABEL_COLUMN,
) -> list[pd.DataFrame]:
    """Split the rows of `df` into `n_parties` disjoint, near-equal parts that keep every column.

    `skew` in [0, 1] skews the label: that fraction of the rows is placed by label (low labels to the first
    parties), the others at random; 0 is iid, 1 sorts all rows by label before cutting.
    """
    if isinstance(n_parties, bool) or not isinstance(n_parties, numbers.Integral) or n_parties < 1:
        raise ValueError(f"n_parties must be a positive integer, got {n_parties!r}")
    if n_parties > len(df):
        raise ValueError(f"cannot give {n_parties} parties at least one row each from {len(df)} rows")
    if isinstance(skew, bool) or not isinstance(skew, numbers.Real) or not 0 <= skew <= 1:
        raise ValueError(f"skew must be a number in [0, 1], got {skew!r}")

    rng = np.random.default_rng(seed)
    score = rng.random(len(df))
    if skew > 0:
        if label_column not in df.columns:
            raise ValueError(f"skew needs a label, but label_column {label_column!r} is not a column")
        label = pd.to_numeric(df[label_column], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(label).any():
            raise ValueError(f"skew needs a numeric label without missing values in {label_column!r}")
        span = label.max() - label.min()
        scaled = (label - label.min()) / span if span > 0 else np.zeros_like(label)
        score = np.where(rng.random(len(df)) < skew, scaled, score)
    tie_break = rng.random(len(df))
    order = np.lexsort((tie_break, score))
    return [
        df.iloc[rng.permutation(part)].reset_index(drop=True) for part in np.array_split(order, n_parties)
    ]


def credit_vertical(
    n_rows: int = 30_000, seed: int = 0, overlap: float = 0.8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic data of `make_credit`, split vertically into (guest, host) with the default features."""
    return vertical_split(make_credit(n_rows, seed), overlap=overlap, seed=seed)


def credit_horizontal(n_rows: int = 30_000, seed: int = 0, n_parties: int = 2) -> list[pd.DataFrame]:
    """The synthetic credit data of `make_credit`, split horizontally into `n_parties` iid parts."""
    return horizontal_split(make_credit(n_rows, seed), n_parties=n_parties, seed=seed)
