"""The components shipped with fedbench; importing this package registers them."""

from fedbench.components.builtin import (
    binning,
    evaluate,
    head,
    preprocess,
    psi,
    row_count,
    sample,
    select,
    split,
    statistics,
)

__all__ = [
    "binning",
    "evaluate",
    "head",
    "preprocess",
    "psi",
    "row_count",
    "sample",
    "select",
    "split",
    "statistics",
]
