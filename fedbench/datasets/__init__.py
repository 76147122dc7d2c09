"""Demo data generated or bundled locally, and the splits that turn one table into several parties' tables.

Nothing here downloads: the credit data is synthetic and seeded, the breast-cancer data ships with
scikit-learn.
"""

from fedbench.datasets.breast_cancer import breast_cancer_table, breast_cancer_vertical
from fedbench.datasets.credit import (
    FEATURES,
    GUEST_FEATURES,
    HOST_FEATURES,
    ID_COLUMN,
    LABEL_COLUMN,
    make_credit,
)
from fedbench.datasets.splits import credit_horizontal, credit_vertical, horizontal_split, vertical_split

__all__ = [
    "FEATURES",
    "GUEST_FEATURES",
    "HOST_FEATURES",
    "ID_COLUMN",
    "LABEL_COLUMN",
    "breast_cancer_table",
    "breast_cancer_vertical",
    "credit_horizontal",
    "credit_vertical",
    "horizontal_split",
    "make_credit",
    "vertical_split",
]
