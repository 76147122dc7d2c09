"""The components shipped with fedbench; importing this package registers them."""

from fedbench.components.builtin import (
    binning,
    compare,
    evaluate,
    head,
    hetero_lr,
    hetero_secureboost,
    homo_lr,
    homo_score,
    preprocess,
    psi,
    row_count,
    sample,
    score,
    select,
    split,
    statistics,
)

__all__ = [
    "binning",
    "compare",
    "evaluate",
    "head",
    "hetero_lr",
    "hetero_secureboost",
    "homo_lr",
    "homo_score",
    "preprocess",
    "psi",
    "row_count",
    "sample",
    "score",
    "select",
    "split",
    "statistics",
]
