"""Which column of a guest's table is its label, one rule shared by the shipped components.

A component's `label` param names it; left empty, the first of LABEL_CANDIDATES the table has is used (the
demo data's `default`, or `y`). A named label that the table lacks is an error of the calling component.
"""

from __future__ import annotations

import pandas as pd

from fedbench.errors import FedbenchError

__all__ = ["LABEL_CANDIDATES", "find_label"]

LABEL_CANDIDATES = ("default", "y")


def find_label(table: pd.DataFrame, label: str | None, error: type[FedbenchError]) -> str | None:
    """The label column: `label` if given (it must exist, else `error`), else the first candidate present."""
    if label is not None:
        if label not in table.columns:
            raise error(f"no label column {label!r}; the table has {list(table.columns)}")
        return label
    return next((name for name in LABEL_CANDIDATES if name in table.columns), None)
