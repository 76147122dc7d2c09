"""The Wisconsin breast-cancer data that ships with scikit-learn, split vertically for a small two-party demo.

It is the classic first vertical-federated example (569 rows, 30 features): small enough for
Paillier-encrypted training in seconds, and bundled inside scikit-learn, so nothing is downloaded.
"""

from __future__ import annotations

import re

import pandas as pd

from fedbench.datasets.splits import vertical_split

BREAST_CANCER_LABEL = "y"
N_GUEST_FEATURES = 10


def _snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def breast_cancer_table() -> pd.DataFrame:
    """scikit-learn's breast-cancer data as one table: string `id` (the row number), `y`, then 30 features."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as exc:
        raise ImportError("the breast-cancer demo data needs scikit-learn: pip install scikit-learn") from exc

    bunch = load_breast_cancer()
    features = pd.DataFrame(bunch.data, columns=[_snake_case(str(name)) for name in bunch.feature_names])
    table = pd.DataFrame({"id": [str(i) for i in range(len(features))], BREAST_CANCER_LABEL: bunch.target})
    table[BREAST_CANCER_LABEL] = table[BREAST_CANCER_LABEL].astype("int64")
    return pd.concat([table, features], axis=1)


def breast_cancer_vertical(overlap: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (guest, host): guest has `id`, `y` and the 10 "mean" features, host `id` and the other 20.

    `y` is encoded as scikit-learn gives it: 0 = malignant, 1 = benign (212 and 357 rows).
    """
    table = breast_cancer_table()
    host_features = list(table.columns[2 + N_GUEST_FEATURES :])
    return vertical_split(
        table, label_column=BREAST_CANCER_LABEL, host_features=host_features, overlap=overlap, seed=seed
    )
